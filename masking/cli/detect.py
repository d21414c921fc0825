"""`masking detect`: run one registry model on images and print what it finds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from masking.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `detect` sub-command."""
    p = sub.add_parser(
        "detect",
        help="Run a detector on images and print its detections.",
        description="Run one model from the registry on images and print its boxes, in image pixels. "
        "Useful to check what a model sees before using it in a zones file or an audit.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Image files (anything OpenCV reads).")
    p.add_argument(
        "--model", "-m", default="yolox-nano",
        help="Registry model name (see `masking models list`). Default yolox-nano: the audit's "
        "object detector, Apache-2.0 and fast on a CPU.",
    )
    p.add_argument(
        "--conf", type=float, default=None,
        help="Score threshold. Default: the model family's own (0.25 for YOLO models, 0.5 YuNet, "
        "0.7 UltraFace, 0.2 CenterFace), the values their authors publish.",
    )
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold. Default: the family's own.")
    p.add_argument(
        "--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
        help="Network input size for dynamic-size models. Default: the model's (or the image's for faces).",
    )
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads. Default 2.")
    p.add_argument("--json", action="store_true", help="Print a JSON list, one object per image (file, width, height, model, detections), instead of text.")
    p.set_defaults(handler=run)


def _read(path: str) -> np.ndarray:
    from masking.video.images import read_image

    if not Path(path).is_file():
        raise InputError(f"{path}: no such image file")
    return read_image(path)


def run(args: argparse.Namespace) -> int:
    """Handler of `masking detect`."""
    from masking.detect.factory import load_detector

    size = tuple(args.input_size) if args.input_size else None
    detector = load_detector(args.model, threads=args.threads, conf=args.conf, iou=args.iou, input_size=size)
    results: list[dict[str, Any]] = []
    for path in args.images:
        img = _read(path)
        det = detector.detect(img)[0]
        order = np.argsort(-det.confidence, kind="stable")
        results.append(
            {
                "file": path,
                "width": int(img.shape[1]),
                "height": int(img.shape[0]),
                "model": args.model,
                "detections": [
                    {
                        "class_name": str(det.names[i]),
                        "score": round(float(det.confidence[i]), 4),
                        "xyxy": [round(float(v), 1) for v in det.xyxy[i]],
                    }
                    for i in order
                ],
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"{r['file']} ({r['width']}x{r['height']}): {len(r['detections'])} detection(s) by {args.model}")
        for d in r["detections"]:
            x1, y1, x2, y2 = d["xyxy"]
            print(f"  {d['class_name']:<24} {d['score']:.3f}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    return 0
