"""Small edits of ONNX files in the protobuf wire format: symbolic dims, extra graph outputs.

A few published files (CenterFace) declare fixed input/output shapes although the network is
fully convolutional. ONNX Runtime enforces declared shapes, so the declared dims are rewritten
to symbolic ones in the protobuf wire format: no `onnx` package at run time, and only the
shape fields of the named graph inputs/outputs change (weights are copied byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from masking.errors import ModelError


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> Iterable[tuple[int, int, bytes, bytes | None]]:
    """(field number, wire type, whole encoded field, payload of length-delimited fields)."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        payload = None
        if wt == 0:
            _, pos = _varint(buf, pos)
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            payload = buf[pos : pos + ln]
            pos += ln
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        if pos > len(buf):
            raise ValueError("truncated protobuf field")
        yield num, wt, buf[start:pos], payload


def _ld(num: int, payload: bytes) -> bytes:
    return _enc_varint((num << 3) | 2) + _enc_varint(len(payload)) + payload


def _rewrite(buf: bytes, num: int, fn: Callable[[bytes], bytes]) -> bytes:
    parts = []
    for n, wt, raw, payload in _fields(buf):
        parts.append(_ld(n, fn(payload)) if n == num and wt == 2 and payload is not None else raw)
    return b"".join(parts)


def _symbolic_shape(name: str, free_axes: tuple[int, ...]) -> Callable[[bytes], bytes]:
    def shape(payload: bytes) -> bytes:
        parts, i = [], 0
        for n, wt, raw, _ in _fields(payload):
            if n == 1 and wt == 2:  # TensorShapeProto.dim
                parts.append(_ld(1, _ld(2, f"{name}_{i}".encode())) if i in free_axes else raw)
                i += 1
            else:
                parts.append(raw)
        return b"".join(parts)

    return shape


def make_dims_symbolic(model: bytes, tensor_names: Sequence[str], free_axes: tuple[int, ...] = (0, 2, 3)) -> bytes:
    """Rewrite the declared dims `free_axes` of the named graph inputs/outputs to symbolic dims."""
    wanted = set(tensor_names)
    found: set[str] = set()

    def value_info(payload: bytes) -> bytes:
        name = next((p.decode() for n, wt, _, p in _fields(payload) if n == 1 and wt == 2 and p is not None), None)
        if name is None or name not in wanted:
            return payload
        found.add(name)
        shape = _symbolic_shape(name.replace(".", "_"), free_axes)
        return _rewrite(payload, 2, lambda t: _rewrite(t, 1, lambda tt: _rewrite(tt, 2, shape)))

    def graph(payload: bytes) -> bytes:
        parts = []
        for n, wt, raw, p in _fields(payload):
            if n in (11, 12) and wt == 2 and p is not None:  # GraphProto.input / .output
                parts.append(_ld(n, value_info(p)))
            else:
                parts.append(raw)
        return b"".join(parts)

    try:
        patched = _rewrite(model, 7, graph)  # ModelProto.graph
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"not a valid ONNX protobuf: {exc}") from exc
    missing = sorted(wanted - found)
    if missing:
        raise ModelError(f"ONNX graph has no input/output named {missing}")
    return patched


def _float_value_info(name: str) -> bytes:
    """A ValueInfoProto: name + TypeProto{tensor_type{elem_type: FLOAT}} (shape left open)."""
    tensor = _enc_varint((1 << 3) | 0) + _enc_varint(1)
    return _ld(1, name.encode()) + _ld(2, _ld(1, tensor))


def with_float_outputs(model: bytes, names: Sequence[str]) -> bytes:
    """The ONNX `model` with the intermediate tensors `names` added as float graph outputs
    (ModelProto.graph = 7, GraphProto.output = 12; repeated fields may be appended anywhere)."""
    found = False

    def graph(payload: bytes) -> bytes:
        nonlocal found
        found = True
        return payload + b"".join(_ld(12, _float_value_info(n)) for n in names)

    try:
        patched = _rewrite(model, 7, graph)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"not a valid ONNX protobuf: {exc}") from exc
    if not found:
        raise ModelError("ONNX file holds no graph")
    return patched
