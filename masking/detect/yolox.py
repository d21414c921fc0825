"""Megvii YOLOX exported to ONNX (the official demo export, grid not decoded in the graph).

Input: BGR, raw 0-255, letterbox keeping aspect ratio with the image at the top-left, pad 114.
Output `[N, A, 5 + nc]` for strides 8/16/32, rows `[dx, dy, log_w, log_h, obj, cls...]` (obj and
cls already sigmoid). Decode: `xy = (dxy + grid) * stride`, `wh = exp(log_wh) * stride`; each
anchor takes its best class, score = obj * cls, then class-aware NMS (IoU 0.45, YOLOX's default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from masking.detect.base import Batch
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.detect.onnx import OnnxDetector, OnnxModel
from masking.detect.preprocess import Geometry, Normalise, prepare
from masking.errors import ModelError

STRIDES = (8, 16, 32)
_NORM = Normalise(rgb=False, mean=0.0, scale=1.0)


def make_grid(input_wh: tuple[int, int], strides: Sequence[int] = STRIDES) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell offsets (A, 2) as (col, row) and the stride (A, 1) of every anchor, in output order."""
    grids, steps = [], []
    for s in strides:
        h, w = input_wh[1] // s, input_wh[0] // s
        ys, xs = np.mgrid[0:h, 0:w]
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((h * w, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


class YoloxDetector(OnnxDetector):
    """A YOLOX export (COCO-80 for YOLOX-Nano).

    Args:
        name: registry name.
        model: the loaded network (fixed 416x416 for YOLOX-Nano).
        class_names: class names in index order.
        conf: minimum obj * cls score (0.25, as measured in ../shared/models/README.md).
        iou: NMS IoU threshold (YOLOX's 0.45).
        input_size: (width, height) for a dynamic file; fixed files use their own size.
    """

    def __init__(
        self,
        name: str,
        model: OnnxModel,
        class_names: Sequence[str],
        conf: float = 0.25,
        iou: float = 0.45,
        input_size: tuple[int, int] | None = None,
        max_det: int = 300,
    ) -> None:
        super().__init__(name, model, class_names, conf, iou)
        self.max_det = int(max_det)
        fixed = model.fixed_hw
        if fixed is not None:
            self.input_wh: tuple[int, int] = (fixed[1], fixed[0])
        elif input_size is not None:
            self.input_wh = (int(input_size[0]), int(input_size[1]))
        else:
            self.input_wh = (416, 416)
        if self.input_wh[0] % 32 or self.input_wh[1] % 32:
            raise ModelError(f"model {name!r}: input size {self.input_wh} must be a multiple of 32")
        self._grid, self._stride = make_grid(self.input_wh)

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        return prepare(batch, self.input_wh, _NORM, "topleft")

    def decode(self, pred: npt.NDArray[np.float32], geom: Geometry) -> Detections:
        """One frame's raw output `(A, 5 + nc)` -> detections in frame pixels."""
        if pred.shape != (self._grid.shape[0], 5 + len(self.class_names)):
            raise ModelError(
                f"model {self.name!r}: output {pred.shape}, expected ({self._grid.shape[0]}, {5 + len(self.class_names)})"
            )
        cls_scores = pred[:, 5:]
        cls = cls_scores.argmax(axis=1)
        score = pred[:, 4] * np.take_along_axis(cls_scores, cls[:, None], axis=1)[:, 0]
        keep = np.flatnonzero(score >= self.conf)
        if keep.size == 0:
            return Detections.empty(self.class_names)
        p, g, s = pred[keep], self._grid[keep], self._stride[keep]
        xy = (p[:, :2] + g) * s
        half = np.exp(np.minimum(p[:, 2:4], 20.0)) * s * 0.5
        xyxy = np.concatenate([xy - half, xy + half], axis=1)
        cid, sc = cls[keep].astype(np.int32), score[keep]
        idx = nms(xyxy, sc, self.iou, cid, self.max_det)
        return Detections(geom.to_frame(xyxy[idx]), sc[idx], cid[idx], self.class_names)

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        out = outputs[0]
        return [self.decode(out[k], geom) for k in range(out.shape[0])]
