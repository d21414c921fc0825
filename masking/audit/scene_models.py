"""The scene models of an audit, run with the LiteRT runtime (`ai-edge-litert`): what each one sees.

Three Apache-2.0 TFLite models from the registry (task `scenes`), each loaded from its verified file:
- `Segmenter` (family `litert-segmentation`, DeepLabV3-MobileNetV2 ADE20K): a class map of the
  view. Input 513x513 RGB scaled to [-1, 1] (`x / 127.5 - 1`), the whole view stretched. The file
  ends with two RESIZE_BILINEAR ops that blow the 129x129x151 logits up to 513x513x151 (40 MB of
  floats, 3/4 of the run time); `without_final_resizes` cuts them off in memory (two in-place edits
  of the flatbuffer: the graph's output index and the operator count), so the map is read at
  129x129. Argmax at 129x129 and argmax of the original's 513x513 output give the same class
  shares within 0.5 % of the view (tests/test_scene_models.py, on real photos).
- `ImageNetClassifier` (family `litert-classifier`, MobileNetV2 1.0 224 uint8): 1001 class scores.
- `Embedder` (family `litert-embedding`, MobileNetV1 1.0 224 uint8 without its head): 1024 floats.
The two MobileNets take the whole view stretched to 224x224 RGB uint8 (their quantisation, scale
1/128 around 128, is the usual `x / 127.5 - 1`) and run unchanged. Outputs are dequantised.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from masking.errors import ModelError
from masking.models.cache import verified_model_path
from masking.models.registry import ModelEntry, load_registry

FAMILIES = ("litert-segmentation", "litert-classifier", "litert-embedding")


def _interpreter(name: str, content: bytes, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # a runtime dependency: only a broken install lacks it
        raise ModelError(f"model {name!r} needs the LiteRT runtime: pip install ai-edge-litert ({exc})") from exc
    try:
        it = Interpreter(model_content=content, num_threads=max(1, int(threads)))
        it.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"model {name!r}: LiteRT cannot load it ({exc})") from exc
    return it


def without_final_resizes(content: bytes) -> tuple[bytes, int]:
    """The model with the RESIZE_BILINEAR ops that end its (only) subgraph removed, and how many were
    removed. The graph's output becomes the input of the first removed resize. Two in-place edits of
    the flatbuffer (no layout change): the output tensor index and the length of the operator list;
    the dropped ops are the last ones, so nothing else refers to their outputs."""
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(content)
    model = schema.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() != 1:
        return content, 0
    sg = model.Subgraphs(0)
    outputs = sg.OutputsAsNumpy()
    if not isinstance(outputs, np.ndarray) or outputs.size != 1:
        return content, 0
    n = sg.OperatorsLength()
    out = int(outputs[0])
    cut = 0
    while n - cut > 1:
        op = sg.Operators(n - cut - 1)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin != schema.BuiltinOperator.RESIZE_BILINEAR or int(op.OutputsAsNumpy()[0]) != out:
            break
        out = int(op.InputsAsNumpy()[0])
        cut += 1
    if not cut:
        return content, 0
    out_vec = sg._tab.Vector(sg._tab.Offset(8))  # SubGraph.outputs (field 2)
    ops_vec = sg._tab.Vector(sg._tab.Offset(10))  # SubGraph.operators (field 3)
    struct.pack_into("<i", buf, out_vec, out)
    struct.pack_into("<I", buf, ops_vec - 4, n - cut)
    return bytes(buf), cut


def _rgb_resized(image: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The BGR view stretched to `size` (w, h) as RGB; INTER_AREA when shrinking (no aliasing)."""
    h, w = image.shape[:2]
    shrink = size[0] < w and size[1] < h
    out = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(out[:, :, ::-1])


class _LiteModel:
    """One TFLite model of the registry, loaded once; calls are serialised (an interpreter is not
    thread-safe)."""

    family = ""

    def __init__(self, name: str, threads: int = 2, content: bytes | None = None) -> None:
        entry = load_registry().get(name)
        if entry.family != self.family:
            raise ModelError(f"model {name!r} is family {entry.family!r}, expected {self.family!r}")
        self.entry: ModelEntry = entry
        self.name = name
        path: Path = verified_model_path(name)
        data = path.read_bytes() if content is None else content
        self.interpreter = _interpreter(name, self.prepare_model(data), threads)
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        shape = [int(v) for v in self._in["shape"]]
        if len(shape) != 4 or shape[3] != 3:
            raise ModelError(f"model {name!r}: expected an NHWC RGB input, got shape {shape}")
        self.input_wh = (shape[2], shape[1])
        self._lock = threading.Lock()

    def prepare_model(self, content: bytes) -> bytes:
        return content

    def _run(self, tensor: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        with self._lock:
            self.interpreter.set_tensor(self._in["index"], tensor[None])
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._out["index"])[0]
        scale, zero = self._out["quantization"]
        if raw.dtype == np.float32 or not scale:
            return np.asarray(raw, np.float32)
        return ((raw.astype(np.float32) - float(zero)) * float(scale)).astype(np.float32)

    def _uint8_input(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        rgb = _rgb_resized(image, self.input_wh)
        if self._in["dtype"] == np.uint8:
            return rgb
        return (rgb.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


class Segmenter(_LiteModel):
    """Semantic segmentation: `labels(image)` is an (h, w) uint8 class map (0 = unlabelled)."""

    family = "litert-segmentation"

    def prepare_model(self, content: bytes) -> bytes:
        pruned, _ = without_final_resizes(content)
        return pruned

    def logits(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(h, w, classes) logits of the view (h, w = the graph's output size)."""
        return self._run(self._uint8_input(image))

    def labels(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.asarray(self.logits(image).argmax(axis=-1), np.uint8)


class ImageNetClassifier(_LiteModel):
    """ImageNet classification: `scores(image)` is (classes,) float32, summing to about 1."""

    family = "litert-classifier"

    def scores(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return self._run(self._uint8_input(image)).reshape(-1)


class Embedder(_LiteModel):
    """Image embedding: `embed(image)` is (D,) float32."""

    family = "litert-embedding"

    def embed(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return self._run(self._uint8_input(image)).reshape(-1)
