"""Non-maximum suppression and box IoU, vectorised (OpenCV's C++ NMS, no per-box Python loops)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """IoU matrix (n, m) of xyxy boxes `a` (n, 4) and `b` (m, 4); 0 where a union is empty."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou.astype(np.float32)


def nms(
    xyxy: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    iou_threshold: float,
    class_ids: npt.NDArray[np.integer] | None = None,
    max_det: int | None = None,
) -> npt.NDArray[np.int64]:
    """Greedy NMS; indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box exceeds `iou_threshold`. With
    `class_ids`, boxes only suppress boxes of their own class (each class is shifted to its own
    region of the plane: the coordinate-offset trick Ultralytics uses).
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float32).reshape(-1)
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    if class_ids is not None and n > 1:
        cid = np.asarray(class_ids).reshape(-1).astype(np.float64)
        span = float(np.abs(boxes).max()) * 2.0 + 1.0
        boxes = boxes + (cid * span)[:, None]
    xywh = np.empty_like(boxes)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    # OpenCV keeps scores > a non-negative threshold and breaks ties arbitrarily: hand it ranks
    # instead (1 for the best box, stable by index on ties) so every box takes part, in a fixed order.
    order = np.argsort(-s, kind="stable")
    rank = np.empty(n, np.float32)
    rank[order] = (n - np.arange(n, dtype=np.float32)) / np.float32(n)
    # (OpenCV's stubs say Sequence; it takes the arrays as they are, without a copy into lists)
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh, rank, 0.0, float(iou_threshold)), np.int64).reshape(-1)  # type: ignore[arg-type]
    keep = keep[np.argsort(-rank[keep], kind="stable")]
    if max_det is not None:
        keep = keep[:max_det]
    return keep
