"""Export an Ultralytics YOLO detector to the ONNX layout masking's runtime reads.

    python models/export.py WEIGHTS_OR_YAML -o OUT.onnx [--imgsz 320] [--nc N --names a,b,c]

WEIGHTS_OR_YAML is a trained `.pt` (e.g. runs/detect/train/weights/best.pt) or a model YAML such
as `yolov8n.yaml` / `yolo11n.yaml` (random weights: for tests and smoke checks only). The file gets
a dynamic batch, height and width, Ultralytics' own metadata (`names`, `imgsz`, `stride`, ...) and
a JSON `masking` key with the same facts, which the runtime prefers. Needs the `export` extra
(torch, ultralytics, onnx); the runtime never imports them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("masking.export")

METADATA_KEY = "masking"


def build(weights_or_yaml: str, nc: int | None = None, names: Sequence[str] | None = None) -> Any:
    """An `ultralytics.YOLO` detection model from a `.pt` file or a model YAML.

    `nc`/`names` set the classes of a YAML-built model (default: the YAML's nc, names `class0..`);
    for a `.pt`, `names` only renames its classes (their count must match).
    """
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    if names is not None and nc is not None and len(names) != nc:
        raise SystemExit(f"--names lists {len(names)} names but --nc is {nc}")
    model = YOLO(weights_or_yaml, task="detect")
    if model.task != "detect":
        raise SystemExit(f"{weights_or_yaml}: task is {model.task!r}; only detection models are supported")
    is_yaml = weights_or_yaml.endswith((".yaml", ".yml"))
    want_nc = nc if nc is not None else (len(names) if names is not None else None)
    if is_yaml and want_nc is not None and want_nc != len(model.names):
        fresh = DetectionModel(weights_or_yaml, nc=want_nc, verbose=False)
        fresh.args, fresh.task = model.model.args, "detect"
        model.model = fresh
    elif not is_yaml and want_nc is not None and want_nc != len(model.names):
        raise SystemExit(f"{weights_or_yaml} has {len(model.names)} classes, not {want_nc}")
    count = len(model.model.names) if isinstance(model.model.names, dict) else int(model.model.yaml["nc"])
    final = list(names) if names is not None else [str(model.model.names.get(i, f"class{i}")) for i in range(count)]
    model.model.names = {i: n for i, n in enumerate(final)}
    return model


def _stamp(path: Path, meta: dict[str, Any]) -> None:
    """Add (or replace) the JSON `masking` metadata key of an ONNX file."""
    import onnx

    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export(model: Any, out: Path, imgsz: int = 320, opset: int | None = None, source: str = "") -> Path:
    """Write `model` to `out` as ONNX with dynamic batch/H/W and the runtime's metadata."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stride = int(max(model.model.stride)) if hasattr(model.model, "stride") else 32
    if imgsz % stride:
        raise SystemExit(f"--imgsz {imgsz} must be a multiple of the model stride {stride}")
    with tempfile.TemporaryDirectory(prefix="masking-export-") as tmp:
        # Ultralytics writes the ONNX file beside the model's source file (and would overwrite an
        # .onnx there): point the source name into a scratch folder instead.
        model.model.pt_path = str(Path(tmp) / "model.pt")
        kwargs: dict[str, Any] = {"format": "onnx", "dynamic": True, "imgsz": imgsz, "simplify": False, "device": "cpu"}
        if opset:
            kwargs["opset"] = opset
        produced = Path(model.export(**kwargs))
        if not produced.is_file():
            raise SystemExit(f"Ultralytics reported {produced} but wrote no such file")
        shutil.move(str(produced), out)
    names = [model.model.names[i] for i in range(len(model.model.names))]
    _stamp(out, {"names": names, "imgsz": [imgsz, imgsz], "stride": stride, "task": "detect", "source": source})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", metavar="WEIGHTS_OR_YAML", help="Trained .pt file, or a model YAML such as yolov8n.yaml.")
    parser.add_argument("-o", "--out", required=True, type=Path, help="Output .onnx path.")
    parser.add_argument(
        "--imgsz", type=int, default=320,
        help="Default input side written to the metadata (the runtime letterboxes to it). 320 keeps "
        "CPU inference near 10 ms per frame; train and export at the same size.",
    )
    parser.add_argument("--nc", type=int, default=None, help="Number of classes (YAML models only).")
    parser.add_argument("--names", default=None, help="Comma-separated class names, in class-id order.")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: Ultralytics' choice).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        parser.error("--names must be distinct and non-empty")
    model = build(args.weights, args.nc, names)
    out = export(model, args.out, args.imgsz, args.opset, source=Path(args.weights).name)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    print(f"  sha256: {digest}")
    print(f"  classes: {', '.join(model.model.names[i] for i in range(len(model.model.names)))}")
    print("  registry entry: family: ultralytics, classes: metadata, input_size: null, "
          f"size: {out.stat().st_size}, sha256: {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
