"""`masking audit INPUT... [--zones FILE] [--camera ID] [--json OUT] [--report OUT.html] [--lang zh|en]`.

Audits snapshots and clips of a camera's view against Art. 7: prints one verdict line per input,
optionally writes the full JSON result and a self-contained HTML report (pictures masked as
recorded and faces blurred unless `--show-unmasked`). An input that cannot be read is recorded as
a failure and the others are audited. Exit status 0 when every input is compliant, 1 when any is
`violation` or `review`, 2 on bad usage or config (or when no input could be audited), 3 when some
inputs could not be audited (3 wins over 1; the JSON and the report hold the good inputs).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from masking._atomic import atomic_write
from masking.cli._audit_options import (
    add_audit_settings_options,
    add_report_options,
    audit_settings_from_args,
)
from masking.errors import InputError, MaskingError
from masking.media import media_kind
from masking.paths import refuse_overwrite

log = logging.getLogger(__name__)



def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `audit` sub-command."""
    p = sub.add_parser(
        "audit",
        help="Audit camera views (images, clips, folders) against Art. 7; propose privacy masks.",
        description=(
            "Judge whether a camera's view, with its zones masked, shows an Art. 7 place (guest room, "
            "dormitory, bathroom, toilet, shower, changing room). Evidence comes from the detectors' "
            "classes mapped in the model registry; evidence under privacy_mask/prohibited_view zones "
            "counts as masked. Exit status: 0 all compliant, 1 any violation or review, 2 bad usage/config or no "
            "readable input, 3 some inputs could not be audited (the others are, and are written)."
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
    p.add_argument(
        "--report", type=Path, metavar="OUT.html",
        help="Write a self-contained HTML report here (beyond 200 inputs also OUT-2.html, OUT-3.html, ...).",
    )
    add_report_options(p)
    add_audit_settings_options(p)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per model (default 2).")
    p.set_defaults(handler=run)


def _expand(inputs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and media_kind(f) is not None
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
    """Audit every input; 0 all compliant, 1 any violation/review, 3 some inputs failed."""
    from masking.audit import Auditor, audit_json_document
    from masking.audit.report import audit_picture, render_audit_pages
    from masking.cli import EXIT_FINDINGS, EXIT_ITEMS_FAILED, EXIT_OK, show_progress
    from masking.config.zones import load_zones
    from masking.report.pictures import PrivacyFilter
    from masking.report.render import write_pages

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
    privacy = PrivacyFilter(show_unmasked=args.show_unmasked, threads=args.threads) if args.report else None
    results = []
    pictures = []
    failures: list[dict[str, str]] = []
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="input", file=sys.stderr, leave=False)
    try:
        for path in paths:
            try:
                result = auditor.audit_path(path, camera)
            except MaskingError as exc:  # this input only: record it, audit the others
                failures.append({"input": str(path), "error": f"{type(exc).__name__}: {exc}"})
                log.error("audit: %s: %s", path, exc)
                line = f"{path}: FAILED ({type(exc).__name__}: {exc})"
            else:
                if privacy is not None:
                    pictures.append(audit_picture(result, camera, privacy))
                result.snapshot = None  # the picture is made: do not hold every frame of a large run
                results.append(result)
                line = result.line()
            if bar is not None:
                bar.write(line)
                bar.update(1)
            else:
                print(line, flush=True, file=sys.stderr if str(args.json) == "-" else sys.stdout)
    finally:
        if bar is not None:
            bar.close()
    if not results:
        raise InputError(f"no input could be audited ({len(failures)} failed; first: {failures[0]['error']})")
    zones_file = str(args.zones) if args.zones else None
    if args.json:
        atomic_write(
            args.json,
            json.dumps(audit_json_document(results, settings.model_dump(), zones_file, failures), indent=2,
                       ensure_ascii=False) + "\n",
            "JSON",
        )
    if args.report:
        write_pages(render_audit_pages(results, pictures, failures, lang=args.lang, zones_file=zones_file,
                                       show_unmasked=args.show_unmasked, path=args.report))
    if failures:
        print(f"audit: {len(failures)} of {len(paths)} input(s) could not be audited", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK if all(r.verdict == "compliant" for r in results) else EXIT_FINDINGS
