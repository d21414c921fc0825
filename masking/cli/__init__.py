"""The `masking` command line. Each sub-command lives in its own module with a `register()`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from masking.errors import AccessRefused, MaskingError

EXIT_OK = 0
EXIT_FINDINGS = 1  # audit/rescan: some input is `violation` or `review`
EXIT_USAGE = 2  # bad usage, bad config or unreadable input
EXIT_ITEMS_FAILED = 3  # rescan: some items failed after retries; audit: some inputs could not be audited
EXIT_REFUSED = 4  # vault: an unmask, export or purge was refused (the refusal is registered)

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    from masking.cli import (
        audit,
        demo,
        detect,
        models,
        rescan,
        scenes,
        serve,
        ui,
        unmask,
        vault,
        verify,
        zones,
    )
    from masking.cli import export as export_cmd
    from masking.cli import filter as filter_cmd
    from masking.cli import register as register_cmd

    parser = argparse.ArgumentParser(
        prog="masking",
        description="Privacy masks and Art. 7 view audits for surveillance cameras.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output (-vv for debug).")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only warnings and errors.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (filter_cmd, zones, models, detect, audit, serve, rescan, scenes, demo, ui,
                   vault, unmask, register_cmd, export_cmd, verify):
        module.register(sub)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def show_progress() -> bool:
    """Progress bars only on an interactive terminal, never in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `masking` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args.handler(args))
    except AccessRefused as exc:
        print(f"masking {args.command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except MaskingError as exc:
        print(f"masking {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        from masking.signals import exit_status

        print(f"masking {args.command}: interrupted", file=sys.stderr)
        return exit_status(exc)
