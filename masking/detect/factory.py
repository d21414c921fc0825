"""`load_detector(name)`: a ready detector for a registry model, dispatched on its family."""

from __future__ import annotations

import logging
from typing import Any

from masking.detect.centerface import INPUT_NAME as CENTERFACE_INPUT
from masking.detect.centerface import OUTPUT_NAMES as CENTERFACE_OUTPUTS
from masking.detect.centerface import CenterfaceDetector
from masking.detect.onnx import OnnxDetector, OnnxModel, SessionOptions, create_session, read_model_bytes
from masking.detect.onnx_shapes import make_dims_symbolic
from masking.detect.ultraface import UltrafaceDetector
from masking.detect.ultralytics import UltralyticsDetector
from masking.detect.yolox import YoloxDetector
from masking.detect.yunet import INPUT_NAME as YUNET_INPUT
from masking.detect.yunet import YunetDetector
from masking.errors import ModelError
from masking.models.cache import verified_model_path
from masking.models.registry import ModelEntry, load_registry

log = logging.getLogger(__name__)


def _load_model(entry: ModelEntry, threads: int) -> OnnxModel:
    path = verified_model_path(entry.name)
    opts = SessionOptions(intra_threads=threads, inter_threads=1)
    # CenterFace declares fixed sizes, YuNet a batch of 1, although both are fully convolutional
    # (YuNet's heads reshape to (1, -1, C), which stacks a batch's rows: see `YunetDetector`).
    symbolic = {"centerface": [CENTERFACE_INPUT, *CENTERFACE_OUTPUTS], "yunet": [YUNET_INPUT]}.get(entry.family)
    if symbolic is not None:
        data = read_model_bytes(entry.name, path)
        try:
            data = make_dims_symbolic(data, symbolic)
        except ModelError as exc:
            raise ModelError(f"model {entry.name!r}: {path}: {exc}; run: masking models pull {entry.name}") from exc
        return OnnxModel(entry.name, create_session(entry.name, data, opts))
    return OnnxModel(entry.name, create_session(entry.name, path, opts))


def load_detector(
    name: str,
    *,
    threads: int = 2,
    conf: float | None = None,
    iou: float | None = None,
    input_size: tuple[int, int] | None = None,
) -> OnnxDetector:
    """Load registry model `name` as a `Detector`.

    Args:
        name: model name in the registry (`masking models list`).
        threads: ONNX Runtime intra-op threads for this detector's session.
        conf: score threshold; None = the family's default (see each adapter).
        iou: NMS IoU threshold; None = the family's default.
        input_size: (width, height) fed to dynamic-size models; fixed-size files use their own.

    Raises:
        ModelError: unknown model, not installed (names the install command), unreadable file,
            or a family this runtime cannot run (e.g. `scenes`).
    """
    if threads < 1:
        raise ModelError(f"model {name!r}: threads must be >= 1, got {threads}")
    entry = load_registry().get(name)
    kwargs: dict[str, Any] = {}
    if conf is not None:
        if not 0.0 <= conf <= 1.0:
            raise ModelError(f"model {name!r}: conf must lie in [0, 1], got {conf}")
        kwargs["conf"] = conf
    if iou is not None:
        if not 0.0 < iou <= 1.0:
            raise ModelError(f"model {name!r}: iou must lie in (0, 1], got {iou}")
        kwargs["iou"] = iou
    if input_size is not None:
        if len(input_size) != 2 or min(input_size) < 32:
            raise ModelError(f"model {name!r}: input_size must be (width, height), each >= 32, got {input_size}")
        kwargs["input_size"] = (int(input_size[0]), int(input_size[1]))
    names = entry.static_class_names
    family = entry.family
    if family == "scenes":
        raise ModelError(f"model {name!r} is a scene classifier, not a detector")
    model = _load_model(entry, threads)
    detector: OnnxDetector
    if family == "ultralytics":
        detector = UltralyticsDetector(name, model, names, **kwargs)
    elif family == "yolox":
        if names is None:
            raise ModelError(f"model {name!r}: YOLOX files carry no class names; list them in the registry")
        detector = YoloxDetector(name, model, names, **kwargs)
    elif family == "yunet":
        detector = YunetDetector(name, model, names or ("face",), **kwargs)
    elif family == "ultraface":
        detector = UltrafaceDetector(name, model, names or ("face",), **kwargs)
    elif family == "centerface":
        detector = CenterfaceDetector(name, model, names or ("face",), **kwargs)
    else:  # pragma: no cover - the registry's Literal rejects other families
        raise ModelError(f"model {name!r}: unsupported family {family!r}")
    log.debug("loaded %r", detector)
    return detector
