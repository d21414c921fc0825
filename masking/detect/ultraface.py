"""Ultra-Light-Fast-Generic face detector (RFB-320), as published in ONNX.

Input: RGB stretched to 320x240 (no letterbox), `(x - 127) / 128`. Outputs `scores` [N, A, 2]
(softmax, column 1 = face) and `boxes` [N, A, 4] as x1, y1, x2, y2 normalised to 0-1 (the
prior-box decode is inside the graph). NMS IoU 0.3 as in the upstream demo.
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

_NORM = Normalise(rgb=True, mean=127.0, scale=1.0 / 128.0)


class UltrafaceDetector(OnnxDetector):
    """UltraFace faces.

    Args:
        name: registry name.
        model: the loaded network (fixed 1x3x240x320).
        class_names: ("face",).
        conf: minimum face probability (0.7, the upstream demo's threshold; below it the model
            fires on textures).
        iou: NMS IoU threshold (upstream's 0.3).
    """

    def __init__(
        self,
        name: str,
        model: OnnxModel,
        class_names: Sequence[str] = ("face",),
        conf: float = 0.7,
        iou: float = 0.3,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(name, model, class_names, conf, iou)
        fixed = model.fixed_hw
        self.input_wh: tuple[int, int] = (fixed[1], fixed[0]) if fixed else (input_size or (320, 240))
        outs = {o.name for o in model.session.get_outputs()}
        if not {"scores", "boxes"} <= outs:
            raise ModelError(f"model {name!r}: not an UltraFace file (needs outputs scores, boxes; has {sorted(outs)})")
        self.model.output_names = ["scores", "boxes"]

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        return prepare(batch, self.input_wh, _NORM, "stretch")

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        scores, boxes = outputs[0][..., 1], outputs[1]
        size = np.array([geom.input_w, geom.input_h, geom.input_w, geom.input_h], np.float32)
        out = []
        for k in range(scores.shape[0]):
            keep = np.flatnonzero(scores[k] > self.conf)
            if keep.size == 0:
                out.append(Detections.empty(self.class_names))
                continue
            xyxy = boxes[k, keep] * size
            xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2])
            sc = scores[k, keep]
            idx = nms(xyxy, sc, self.iou)
            out.append(Detections(geom.to_frame(xyxy[idx]), sc[idx], np.zeros(idx.size, np.int32), self.class_names))
        return out
