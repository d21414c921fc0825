"""`masking audit INPUT... [--zones FILE] [--camera ID] [--json OUT] [--report OUT.html]`.

Audits snapshots and clips of a camera's view against Art. 7: prints one verdict line per input,
optionally writes the full JSON result and a self-contained HTML report. Exit status 0 when every
input is compliant, 1 when any is `violation` or `review`, 2 on bad usage, config or input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from masking._atomic import atomic_write
from masking.cli._audit_options import add_audit_settings_options, audit_settings_from_args
from masking.errors import InputError
from masking.paths import refuse_overwrite

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".ts", ".webm", ".m4v"})


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `audit` sub-command."""
    p = sub.add_parser(
        "audit",
        help="Audit camera views (images, clips, folders) against Art. 7; propose privacy masks.",
        description=(
            "Judge whether a camera's view, with its zones masked, shows an Art. 7 place (guest room, "
            "dormitory, bathroom, toilet, shower, changing room). Evidence comes from the detectors' "
            "classes mapped in models/registry.yaml; evidence under privacy_mask/prohibited_view zones "
            "counts as masked. Exit status: 0 all compliant, 1 any violation or review, 2 bad usage/input."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="Image, video clip, or folder of them.")
    p.add_argument(
        "--zones", type=Path,
        help="Zones YAML of the camera. Without it the view is audited as a camera with no zones, which is "
        "what a new installation looks like.",
    )
    p.add_argument("--camera", help="Camera id in the zones file (needed when it holds several cameras).")
    p.add_argument("--json", type=Path, metavar="OUT", help="Write the full results (schema_version 1) here.")
    p.add_argument("--report", type=Path, metavar="OUT.html", help="Write a self-contained HTML report here.")
    add_audit_settings_options(p)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per model (default 2).")
    p.set_defaults(handler=run)


def _expand(inputs: list[Path]) -> list[Path]:
    from masking.video.images import is_image_path

    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and (is_image_path(f) or f.suffix.lower() in VIDEO_SUFFIXES)
            )
            if not found:
                raise InputError(f"{p}: folder holds no images or clips")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def run(args: argparse.Namespace) -> int:
    """Audit every input; 0 all compliant, 1 any violation/review."""
    from masking.audit import Auditor, results_document
    from masking.audit.report import write_report
    from masking.cli import EXIT_FINDINGS, EXIT_OK, show_progress
    from masking.config.zones import load_zones

    settings = audit_settings_from_args(args)
    camera = None
    if args.zones:
        camera = load_zones(args.zones).camera(args.camera, source=str(args.zones))
    elif args.camera:
        raise InputError("--camera needs --zones (the camera id is looked up in the zones file)")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    paths = _expand(list(args.inputs))
    refuse_overwrite([args.json, args.report], [*paths, args.zones])
    auditor = Auditor(settings, threads=args.threads)
    results = []
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="input", file=sys.stderr, leave=False)
    try:
        for path in paths:
            result = auditor.audit_path(path, camera)
            results.append(result)
            if bar is not None:
                bar.write(result.line())
                bar.update(1)
            else:
                print(result.line(), flush=True, file=sys.stderr if str(args.json) == "-" else sys.stdout)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        atomic_write(
            args.json,
            json.dumps(results_document(results, settings.model_dump(), str(args.zones) if args.zones else None), indent=2, ensure_ascii=False) + "\n",
            "JSON",
        )
    if args.report:
        write_report(args.report, results, {r.input: camera for r in results})
    return EXIT_OK if all(r.verdict == "compliant" for r in results) else EXIT_FINDINGS
