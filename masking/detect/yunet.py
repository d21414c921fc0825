"""OpenCV Zoo YuNet face detector, decoded exactly like `cv2.FaceDetectorYN`.

Input: BGR 0-255, the frame (or the frame stretched to `input_size`) padded bottom/right with 0
to a multiple of 32. Outputs per stride s in (8, 16, 32): `cls_s`, `obj_s` [1, A, 1], `bbox_s`
[1, A, 4]; score = sqrt(clip(cls) * clip(obj)); `cx = (col + b0) * s`, `cy = (row + b1) * s`,
`w = exp(b2) * s`, `h = exp(b3) * s`. NMS IoU 0.3 (OpenCV's default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from masking.detect.base import Batch
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.detect.onnx import OnnxDetector, OnnxModel
from masking.detect.preprocess import Geometry, Normalise, pad_to_multiple, to_tensor
from masking.detect.yolox import make_grid
from masking.errors import ModelError

STRIDES = (8, 16, 32)
INPUT_NAME = "input"
_NORM = Normalise(rgb=False, mean=0.0, scale=1.0)


class YunetDetector(OnnxDetector):
    """YuNet faces.

    Args:
        name: registry name.
        model: the loaded network (dynamic H, W; the published file fixes the batch at 1, `load_detector`
            frees it so a batch of tiles runs in one call).
        class_names: ("face",).
        conf: minimum score. 0.5: OpenCV's demo uses 0.9, which misses small, blurred and turned
            faces in CCTV frames; a false mask costs less than a missed face.
        iou: NMS IoU threshold (OpenCV's 0.3).
        input_size: (width, height) the frame is stretched to; None = the frame's own size.
        top_k: candidates kept before NMS (OpenCV's 5000).
    """

    def __init__(
        self,
        name: str,
        model: OnnxModel,
        class_names: Sequence[str] = ("face",),
        conf: float = 0.5,
        iou: float = 0.3,
        input_size: tuple[int, int] | None = None,
        top_k: int = 5000,
    ) -> None:
        super().__init__(name, model, class_names, conf, iou)
        self.top_k = int(top_k)
        self.input_wh = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self._grids: dict[tuple[int, int], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
        names = {o.name for o in model.session.get_outputs()}
        need = [f"{k}_{s}" for k in ("cls", "obj", "bbox") for s in STRIDES]
        missing = [n for n in need if n not in names]
        if missing:
            raise ModelError(f"model {name!r}: not a YuNet file (outputs {missing} missing)")
        self.model.output_names = need

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        padded, geom = pad_to_multiple(batch, self.input_wh, 32, pad_value=0)
        return to_tensor(padded, _NORM), geom

    def _grid(self, input_wh: tuple[int, int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if input_wh not in self._grids:
            self._grids[input_wh] = make_grid(input_wh, STRIDES)
        return self._grids[input_wh]

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        # A batch-dynamic file (see `factory`) returns the frames' rows one after another in one
        # (1, N * A_s, C) tensor per stride: (N, A_s, C) is a reshape.
        per = [(geom.input_w // s) * (geom.input_h // s) for s in STRIDES]
        outs = [o.reshape(-1, per[i % 3], o.shape[-1]) for i, o in enumerate(outputs)]
        cls = np.concatenate(outs[0:3], axis=1)[..., 0]  # (N, A)
        obj = np.concatenate(outs[3:6], axis=1)[..., 0]
        box = np.concatenate(outs[6:9], axis=1)  # (N, A, 4)
        grid, stride = self._grid((geom.input_w, geom.input_h))
        if box.shape[1] != grid.shape[0]:
            raise ModelError(f"model {self.name!r}: {box.shape[1]} anchors, expected {grid.shape[0]}")
        score = np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0))
        out = []
        for k in range(score.shape[0]):
            keep = np.flatnonzero(score[k] >= self.conf)
            if keep.size == 0:
                out.append(Detections.empty(self.class_names))
                continue
            if keep.size > self.top_k:
                keep = keep[np.argsort(-score[k, keep], kind="stable")[: self.top_k]]
            b, s = box[k, keep], stride[keep]
            c = (b[:, :2] + grid[keep]) * s
            half = np.exp(np.minimum(b[:, 2:4], 20.0)) * s * 0.5
            xyxy = np.concatenate([c - half, c + half], axis=1)
            sc = score[k, keep]
            idx = nms(xyxy, sc, self.iou)
            out.append(Detections(geom.to_frame(xyxy[idx]), sc[idx], np.zeros(idx.size, np.int32), self.class_names))
        return out
