"""Ultralytics YOLO (v8 / 11 detection heads) exported to ONNX, decoded like Ultralytics' predictor.

Input: RGB / 255, centred letterbox with pad 114. Fixed-size files are fed at their own size; a
dynamic file is fed at `imgsz` from its metadata (or `input_size`) with the padding trimmed to a
stride multiple, as Ultralytics' predictor does for dynamic exports. Output `[N, 4 + nc, A]`:
`cx, cy, w, h` in input pixels then one score per class (no objectness). Each anchor takes its
best class; anchors above `conf` go through class-aware NMS (`iou` 0.7, Ultralytics' default).
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from masking.detect.base import Batch
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.detect.onnx import OnnxDetector, OnnxModel
from masking.detect.preprocess import Geometry, Normalise, prepare
from masking.errors import ModelError

log = logging.getLogger(__name__)

METADATA_KEY = "masking"  # JSON metadata written by models/export.py
_NORM = Normalise(rgb=True, mean=0.0, scale=1.0 / 255.0)
MAX_NMS = 30000  # candidates kept before NMS (Ultralytics' max_nms)


def _parse(value: str, what: str, model: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"model {model!r}: cannot parse ONNX metadata {what!r}: {value[:80]!r}") from exc


def read_metadata(meta: dict[str, str], model: str) -> dict[str, Any]:
    """`names` (tuple, index order), `imgsz` ((h, w) or None) and `stride` from an export's metadata.

    Our own JSON key `masking` wins; otherwise Ultralytics' keys (`names` is a Python dict literal).
    """
    src: dict[str, Any] = {}
    if METADATA_KEY in meta:
        parsed = _parse(meta[METADATA_KEY], METADATA_KEY, model)
        if not isinstance(parsed, dict):
            raise ModelError(f"model {model!r}: ONNX metadata {METADATA_KEY!r} must be a JSON object")
        src = parsed
    names_raw = src.get("names", _parse(meta["names"], "names", model) if "names" in meta else None)
    names: tuple[str, ...] | None = None
    if isinstance(names_raw, dict):
        keys = sorted(int(k) for k in names_raw)
        if keys != list(range(len(keys))):
            raise ModelError(f"model {model!r}: metadata `names` keys are not 0..{len(keys) - 1}")
        names = tuple(str(names_raw[k] if k in names_raw else names_raw[str(k)]) for k in keys)
    elif isinstance(names_raw, (list, tuple)):
        names = tuple(str(n) for n in names_raw)
    imgsz_raw = src.get("imgsz", _parse(meta["imgsz"], "imgsz", model) if "imgsz" in meta else None)
    imgsz: tuple[int, int] | None = None
    if isinstance(imgsz_raw, int):
        imgsz = (imgsz_raw, imgsz_raw)
    elif isinstance(imgsz_raw, (list, tuple)) and len(imgsz_raw) == 2:
        imgsz = (int(imgsz_raw[0]), int(imgsz_raw[1]))
    stride_raw = src.get("stride", _parse(meta["stride"], "stride", model) if "stride" in meta else 32)
    stride = int(max(stride_raw) if isinstance(stride_raw, (list, tuple)) else stride_raw)
    return {"names": names, "imgsz": imgsz, "stride": stride}


class UltralyticsDetector(OnnxDetector):
    """An Ultralytics YOLO detection export.

    Args:
        name: registry name (used in messages).
        model: the loaded network.
        class_names: names from the registry, or None to read them from the file's metadata.
        conf: minimum class score (Ultralytics' default 0.25).
        iou: NMS IoU threshold (Ultralytics' default 0.7).
        input_size: (width, height) for a dynamic file; ignored (with a warning) for a fixed one.
        agnostic: NMS across classes (Ultralytics' default: per class).
        max_det: most boxes per frame (Ultralytics' default 300).
    """

    def __init__(
        self,
        name: str,
        model: OnnxModel,
        class_names: Sequence[str] | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        input_size: tuple[int, int] | None = None,
        agnostic: bool = False,
        max_det: int = 300,
    ) -> None:
        self.name = name
        self.model = model
        meta = read_metadata(model.metadata, name)
        names = tuple(class_names) if class_names is not None else meta["names"]
        if not names:
            raise ModelError(f"model {name!r}: no class names (metadata `names` missing and none in the registry)")
        self.class_names = tuple(names)
        self.stride: int = meta["stride"]
        self.conf, self.iou, self.agnostic, self.max_det = float(conf), float(iou), bool(agnostic), int(max_det)
        fixed = model.fixed_hw
        if fixed is not None:
            if input_size is not None and (input_size[1], input_size[0]) != fixed:
                log.warning("model %s: fixed input %dx%d; ignoring input_size %s", name, fixed[1], fixed[0], input_size)
            self.input_wh: tuple[int, int] = (fixed[1], fixed[0])
            self._trim_to_stride = False
        else:
            if input_size is not None:
                self.input_wh = (int(input_size[0]), int(input_size[1]))
            elif meta["imgsz"] is not None:
                self.input_wh = (meta["imgsz"][1], meta["imgsz"][0])
            else:
                self.input_wh = (640, 640)
            self._trim_to_stride = True

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        return prepare(batch, self.input_wh, _NORM, "center", self.stride if self._trim_to_stride else None)

    def decode(self, pred: npt.NDArray[np.float32], geom: Geometry) -> Detections:
        """One frame's raw output `(4 + nc, A)` -> detections in frame pixels."""
        nc = len(self.class_names)
        if pred.shape[0] != 4 + nc:
            raise ModelError(
                f"model {self.name!r}: output has {pred.shape[0]} rows, expected 4 + {nc} classes"
            )
        scores = pred[4:]
        cls = scores.argmax(axis=0)
        best = np.take_along_axis(scores, cls[None], axis=0)[0]
        keep = np.flatnonzero(best > self.conf)
        if keep.size == 0:
            return Detections.empty(self.class_names)
        if keep.size > MAX_NMS:
            keep = keep[np.argsort(-best[keep], kind="stable")[:MAX_NMS]]
        cxcywh = pred[:4, keep].T
        half = cxcywh[:, 2:] * 0.5
        xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
        cid = cls[keep].astype(np.int32)
        score = best[keep]
        idx = nms(xyxy, score, self.iou, None if self.agnostic else cid, self.max_det)
        return Detections(geom.to_frame(xyxy[idx]), score[idx], cid[idx], self.class_names)

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        out = outputs[0]
        if out.ndim != 3:
            raise ModelError(f"model {self.name!r}: expected a [N, 4 + nc, A] output, got {out.shape}")
        return [self.decode(out[k], geom) for k in range(out.shape[0])]
