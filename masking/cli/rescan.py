"""`masking rescan`: audit a whole camera fleet, resumably, into an SQLite store and a report."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from masking.cli._audit_options import (
    add_audit_settings_options,
    add_report_options,
    audit_settings_from_args,
)
from masking.errors import ConfigError

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0
_REPORT_FILES = ("results.json", "results.csv", "report.html")  # what `--out DIR` holds


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `rescan` sub-command."""
    cores = os.cpu_count() or 1
    p = sub.add_parser(
        "rescan",
        help="Audit a camera fleet (manifest or folder) into a resumable store and an HTML/CSV/JSON report.",
        description=(
            "Audit every camera of a fleet as `masking audit` does, one work item per image, clip or stream "
            "sample. Results go to an SQLite store; running the same command again skips finished items, "
            "retries failed ones and picks up new files. Exit status: 0 all compliant, 1 a violation or "
            "review, 2 bad usage or input, 3 some items failed after retries (or were left for a later run)."
        ),
    )
    p.add_argument(
        "fleet", metavar="FLEET",
        help="A fleet manifest (.yaml/.yml or .csv), or a folder with one sub-folder per camera (optional "
        "zones.yaml inside; media files directly in the folder are one camera each).",
    )
    p.add_argument("--root", metavar="DIR", type=Path,
                   help="Confine the manifest: every zones file, footage path and camera folder must lie inside DIR "
                   "(links resolved), checked before anything is read. Default: a manifest may name any file you "
                   "can read, like a script.")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="Write report.html, results.csv and results.json here (default: no report files).")
    p.add_argument("--store", metavar="FILE", type=Path,
                   help="SQLite result store (default: DIR/rescan.sqlite with --out, else ./rescan.sqlite): "
                   "the same store makes a rerun resume.")
    p.add_argument("--workers", type=int, default=cores, metavar="N",
                   help=f"Local worker processes (default: the {cores} core(s) of this machine, each with "
                   "cores / N ONNX Runtime threads so they do not oversubscribe; 0 audits in this process).")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="Run the items on this existing Dask distributed scheduler instead (workers need masking "
                   "installed, the models in their model cache and the footage at the same paths).")
    p.add_argument("--attempts", type=int, default=3, metavar="N",
                   help="Tries per item before it is recorded as failed (default 3: rides out a flaky read or a "
                   "lost worker, gives up quickly on a broken file).")
    p.add_argument("--force", action="store_true", help="Redo items already done (default: skip them).")
    p.add_argument("--segment-seconds", type=float, metavar="S",
                   help="Split clips longer than 1.5 x S into items of about S seconds (default: one item per clip; "
                   "for long recordings, so a failure or an interruption redoes minutes, not hours).")
    p.add_argument("--max-items", type=int, metavar="N",
                   help="Dispatch at most N items in this run (a trial or staged run); rerun to continue.")
    add_audit_settings_options(p)
    add_report_options(p)
    p.add_argument("--stream-seconds", type=float, default=10.0, metavar="S",
                   help="Seconds sampled from each stream URL of a folder fleet (manifests set their own; "
                   "default 10: past a passer-by, cheap for thousands of cameras).")
    p.set_defaults(handler=run)


def _progress_printer(show_bar: bool) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A callback drawing a tqdm bar (items/s, ETA) on a terminal, or logging a line every 10 s."""
    state: dict[str, Any] = {"bar": None, "last": 0.0, "t0": time.monotonic()}

    def update(prog: Any) -> None:
        if show_bar:
            from tqdm import tqdm

            bar = state["bar"]
            if bar is None:
                bar = state["bar"] = tqdm(total=prog.total, unit="item", dynamic_ncols=True, file=sys.stderr)
            bar.total = prog.total
            bar.n = prog.finished
            bar.set_postfix(failed=prog.failed, skipped=prog.skipped, refresh=False)
            bar.refresh()
            return
        now = time.monotonic()
        if now - state["last"] >= _LOG_EVERY_S or prog.finished >= prog.total:
            state["last"] = now
            rate = prog.finished / max(1e-9, now - state["t0"])
            eta = (prog.total - prog.finished) / rate if rate > 0 else float("nan")
            log.info("rescan: %d/%d items (%d failed, %d retried), %.2f items/s, ETA %.0f s",
                     prog.finished, prog.total, prog.failed, prog.retried, rate, eta)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return update, close


def run(args: argparse.Namespace) -> int:
    """Handler of `masking rescan`."""
    from masking._atomic import ensure_folder
    from masking.cli import EXIT_FINDINGS, EXIT_ITEMS_FAILED, EXIT_OK, show_progress
    from masking.paths import refuse_overwrite
    from masking.rescan.manifest import fleet_inputs, load_fleet
    from masking.rescan.report import write_outputs
    from masking.rescan.runner import RescanOptions, run_rescan
    from masking.rescan.store import Store
    from masking.signals import sigterm_as_interrupt

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    if not 1 <= args.attempts <= 20:
        raise ConfigError(f"--attempts must be 1-20, got {args.attempts}")
    if args.max_items is not None and args.max_items < 1:
        raise ConfigError(f"--max-items must be >= 1, got {args.max_items}")
    if args.segment_seconds is not None and args.segment_seconds < 5:
        raise ConfigError(f"--segment-seconds must be >= 5, got {args.segment_seconds}")
    if args.scheduler and "://" not in args.scheduler:
        raise ConfigError(f"--scheduler {args.scheduler!r}: expected an address like tcp://HOST:PORT")
    settings = audit_settings_from_args(args).model_dump(mode="json")
    fleet = load_fleet(args.fleet, stream_seconds=args.stream_seconds, root=args.root)
    store_path = args.store or ((args.out / "rescan.sqlite") if args.out else Path("rescan.sqlite"))
    refuse_overwrite([store_path, *(args.out / n for n in _REPORT_FILES if args.out)], fleet_inputs(fleet, args.fleet))
    if args.out:
        ensure_folder(args.out, "report folder (--out)")
    options = RescanOptions(settings=settings, workers=args.workers, scheduler=args.scheduler,
                            attempts=args.attempts, force=args.force, max_items=args.max_items,
                            segment_seconds=args.segment_seconds, show_unmasked=args.show_unmasked)
    update, close = _progress_printer(show_progress())
    with sigterm_as_interrupt(), Store(store_path) as store:
        try:
            result = run_rescan(fleet, options, store, progress=update)
        finally:
            close()
    s = result.summary()
    print(
        f"rescan: {s['cameras']} camera(s): {s['violation']} violation, {s['review']} review, "
        f"{s['compliant']} compliant, {s['failed']} failed"
        + (f", {s['pending']} pending (run again to continue)" if s["pending"] else "")
        + f"; items: {result.counts['done']} audited, {result.counts['skipped']} already done, "
        f"{s['items_failed']} failed ({result.elapsed_s:.1f} s, store {store_path})"
    )
    if args.out:
        paths = write_outputs(result, args.out, str(store_path), lang=args.lang, show_unmasked=args.show_unmasked)
        print(f"rescan: report {paths['html']}, {paths['csv']}, {paths['json']}")
    if result.exit_status is not None:
        print(f"rescan: interrupted; {result.counts['done']} item(s) audited in this run are kept, the rest stays "
              "pending: run the same command again to continue", file=sys.stderr)
        return result.exit_status
    if s["items_failed"] or s["items_pending"]:
        return EXIT_ITEMS_FAILED
    if s["violation"] or s["review"]:
        return EXIT_FINDINGS
    return EXIT_OK
