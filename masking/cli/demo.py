"""`masking demo`: run the whole pipeline on a generated clip, no data or set-up needed."""

from __future__ import annotations

import argparse

from masking.cli import EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `demo` sub-command."""
    p = sub.add_parser(
        "demo",
        help="Generate a synthetic clip and zones, mask it, draw the zones, audit the snapshot.",
        description="Generate a 3 s synthetic 1280x720 clip (a corridor with an open guest-room door), "
        "a snapshot and a zones file, then run the filter and `zones draw` on them and audit the snapshot "
        "(JSON + HTML report). Needs no data beyond the installed models (`make demo` installs them).",
    )
    p.add_argument("--out", default="demo-output", help="Folder for the outputs (default: demo-output).")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from masking.demo import run_demo

    ctx = run_demo(args.out)
    print(f"masking demo: outputs in {ctx.out}/")
    for description, path in ctx.outputs:
        print(f"  {description:<28} {path}")
    return EXIT_OK
