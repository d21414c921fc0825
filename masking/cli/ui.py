"""`masking ui --zones FILE [--snapshot CAMERA_ID=IMAGE_OR_URL ...] [--host H] [--port P] [--lang zh|en]`.

Serves the zones console in the browser: draw zones on each camera's picture, see the masked view
and the audit verdict, save a valid zones file. Prints the URL with its access token.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from masking.cli._audit_options import add_audit_settings_options


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `ui` sub-command."""
    p = sub.add_parser(
        "ui",
        help="Browser console: draw zones on camera pictures, preview masks, audit, save the zones file.",
        description=(
            "Serve a local web console for one zones file. It prints a URL with an access token; open it "
            "in a browser on this machine. The console writes only FILE (and FILE.bak, the previous "
            "version). Cameras named by --snapshot that FILE lacks are added when first saved; FILE may "
            "not exist yet."
        ),
    )
    p.add_argument("--zones", required=True, type=Path, metavar="FILE", help="Zones YAML file to edit.")
    p.add_argument(
        "--snapshot", action="append", default=[], metavar="CAMERA_ID=IMAGE_OR_URL",
        help="The camera's picture: an image, a video file (its first frame; audits sample the clip) or a "
        "stream URL (rtsp://, http://...: a fresh frame on request). Repeat for more cameras.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="Address to listen on (default 127.0.0.1; anything else is reachable from other machines).")
    p.add_argument("--port", type=int, default=8765, help="Port (default 8765; 0 picks a free one).")
    p.add_argument("--lang", choices=["zh", "en"], help="Page language (default: the browser's).")
    add_audit_settings_options(p)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per audit model (default 2).")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from masking.audit import Auditor
    from masking.cli import EXIT_OK
    from masking.cli._audit_options import audit_settings_from_args
    from masking.config.roundtrip import ZonesDocument
    from masking.errors import InputError
    from masking.web.app import WebServer
    from masking.web.console import Console, console_app
    from masking.web.snapshots import parse_snapshot_args

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    settings = audit_settings_from_args(args)
    snapshots = parse_snapshot_args(args.snapshot)
    document = ZonesDocument(args.zones, extra_cameras=list(snapshots))
    cameras = document.cameras()  # validates FILE now: a broken file is an error before serving
    if not cameras:
        raise InputError(f"{args.zones}: no such file and no --snapshot camera to start it with")
    console = Console(document, snapshots, make_auditor=lambda: Auditor(settings, threads=args.threads), lang=args.lang)
    server = WebServer(lambda policy: console_app(console, policy), host=args.host, port=args.port)
    print(f"masking ui: {len(cameras)} camera(s) from {args.zones}; open {server.url}", flush=True)
    print("masking ui: press Ctrl-C to stop", file=sys.stderr, flush=True)
    server.serve_forever()
    return EXIT_OK
