"""ONNX Runtime sessions for detectors, and the template every ONNX adapter follows.

One `InferenceSession` per detector, CPU, full graph optimisation, warnings silenced. A model
file that is missing, truncated or not ONNX raises `ModelError` naming the model and the command
that reinstalls it. Errors while running raise `DetectorError` (the pipeline fails closed on it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from masking.detect.base import Batch, as_batch
from masking.detect.detections import Detections
from masking.detect.preprocess import Geometry
from masking.errors import DetectorError, MaskingError, ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """Threads for one session: `intra` inside an operator, `inter` across independent operators."""

    intra_threads: int = 2
    inter_threads: int = 1


def _options(opts: SessionOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(opts.intra_threads))
    so.inter_op_num_threads = max(1, int(opts.inter_threads))
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if opts.inter_threads <= 1 else ort.ExecutionMode.ORT_PARALLEL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: some published files trip harmless initializer warnings
    # worker threads sleep between calls instead of spinning: a spinning pool burns the cores that
    # decoding, masking and encoding of the other cameras need
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _reinstall_hint(name: str) -> str:
    return f"run: masking models pull {name}"


def create_session(name: str, path: Path | bytes, opts: SessionOptions = SessionOptions()) -> ort.InferenceSession:
    """An `InferenceSession` for model `name` from a file (or serialized bytes).

    Raises `ModelError` naming the model when the file is missing, empty, truncated or not ONNX.
    """
    if isinstance(path, Path):
        if not path.is_file():
            raise ModelError(f"model {name!r}: file {path} is missing; {_reinstall_hint(name)}")
        if path.stat().st_size == 0:
            raise ModelError(f"model {name!r}: file {path} is empty; {_reinstall_hint(name)}")
        source: str | bytes = str(path)
    else:
        source = path
    try:
        return ort.InferenceSession(source, sess_options=_options(opts), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        where = f"file {path}" if isinstance(path, Path) else "model bytes"
        raise ModelError(
            f"model {name!r}: {where} is not a loadable ONNX model (truncated or corrupted?): "
            f"{str(exc).splitlines()[0][:300]}; {_reinstall_hint(name)}"
        ) from exc


def read_model_bytes(name: str, path: Path) -> bytes:
    """The raw bytes of a model file; `ModelError` when it is missing or empty."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {name!r}: cannot read {path}: {exc}; {_reinstall_hint(name)}") from exc
    if not data:
        raise ModelError(f"model {name!r}: file {path} is empty; {_reinstall_hint(name)}")
    return data


class OnnxModel:
    """A loaded ONNX network: its session, input name and declared input shape.

    `run(tensor)` feeds an NCHW batch. When the file fixes the batch dimension at 1 the batch is
    fed one frame at a time (pre/post-processing stay batched); a dynamic batch goes in one call.
    """

    def __init__(self, name: str, session: ort.InferenceSession, output_names: Sequence[str] | None = None) -> None:
        self.name = name
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: tuple[int | str | None, ...] = tuple(inp.shape)
        self.output_names: list[str] = list(output_names) if output_names else [o.name for o in session.get_outputs()]
        b = self.input_shape[0] if self.input_shape else None
        self.fixed_batch: int | None = b if isinstance(b, int) else None
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """(height, width) when the file fixes them, else None (dynamic)."""
        if len(self.input_shape) == 4 and all(isinstance(d, int) for d in self.input_shape[2:]):
            return int(self.input_shape[2]), int(self.input_shape[3])  # type: ignore[arg-type]
        return None

    def _run_once(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        try:
            return list(self.session.run(self.output_names, {self.input_name: tensor}))
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise DetectorError(
                f"model {self.name!r}: inference failed on input {tuple(tensor.shape)}: {str(exc).splitlines()[0][:300]}"
            ) from exc

    def run(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Outputs for an NCHW batch, concatenated over the batch axis."""
        n = tensor.shape[0]
        if self.fixed_batch is None or self.fixed_batch == n:
            return self._run_once(tensor)
        if self.fixed_batch != 1:
            raise DetectorError(f"model {self.name!r}: fixed batch {self.fixed_batch} cannot take {n} frames")
        parts = [self._run_once(tensor[k : k + 1]) for k in range(n)]
        return [np.concatenate(outs, axis=0) for outs in zip(*parts)]


class OnnxDetector:
    """Template of an ONNX detector: `preprocess` -> `raw_run` -> `postprocess`.

    Subclasses set `name`, `class_names`, `model` and implement `preprocess` and `postprocess`.
    `raw_run` is the bare `session.run` so benchmarks can separate inference from the rest.
    """

    name: str
    class_names: tuple[str, ...]
    model: OnnxModel
    conf: float
    iou: float

    def __init__(self, name: str, model: OnnxModel, class_names: Sequence[str], conf: float, iou: float) -> None:
        self.name = name
        self.model = model
        self.class_names = tuple(class_names)
        self.conf, self.iou = float(conf), float(iou)

    def preprocess(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry]:
        raise NotImplementedError

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], geom: Geometry) -> list[Detections]:
        raise NotImplementedError

    def raw_run(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """The network alone on a prepared NCHW tensor."""
        return self.model.run(tensor)

    def detect(self, batch: Batch) -> list[Detections]:
        """One `Detections` per frame of a (N, H, W, 3) BGR batch (or one frame), in frame pixels."""
        return self.complete(self.prepare_input(batch))

    def prepare_input(self, batch: Batch) -> tuple[npt.NDArray[np.float32], Geometry] | None:
        """The first half of `detect`: the checked batch as the network's input (None: no frames).
        The pipeline's detection stage runs it while the network works on the previous call."""
        frames = as_batch(batch)
        if frames.shape[0] == 0:
            return None
        if frames.shape[1] < 2 or frames.shape[2] < 2:
            raise DetectorError(f"model {self.name!r}: frames of {frames.shape[2]}x{frames.shape[1]} are too small")
        return self.preprocess(frames)

    def complete(self, prepared: tuple[npt.NDArray[np.float32], Geometry] | None) -> list[Detections]:
        """The second half of `detect`: the network and the decoding of its output."""
        if prepared is None:
            return []
        tensor, geom = prepared
        outputs = self.raw_run(tensor)
        for out in outputs:  # a NaN score would silently drop a box: fail instead
            if not np.isfinite(out).all():
                raise DetectorError(f"model {self.name!r}: output holds NaN or infinite values")
        try:
            return self.postprocess(outputs, geom)
        except DetectorError:
            raise
        except MaskingError as exc:  # malformed output (shape, invalid boxes): the detector failed
            raise DetectorError(f"model {self.name!r}: unusable output: {exc}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, conf={self.conf}, iou={self.iou})"
