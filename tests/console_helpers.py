"""Shared pieces of the console tests: a commented zones file, the app behind a TestClient, a live server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from masking.audit import Auditor
from masking.config.roundtrip import ZonesDocument
from masking.web.app import WebServer, policy_for
from masking.web.console import Console, console_app
from masking.web.snapshots import Snapshot, open_snapshot

TOKEN = "test-token-0123456789"
HOST, PORT = "127.0.0.1", 8765
BASE = f"http://{HOST}:{PORT}"

# A zones file as a person writes it: comments, flow-style polygons, numbers spelt "0.10".
ZONES_TEXT = """\
# Hotel corridor, 3rd floor (test fixture).
cameras:
  - camera_id: corridor-3f
    site: "Hotel, 3rd floor"
    zones:
      - id: door-301
        kind: prohibited_view   # opens onto a guest room
        polygon: [[0.02, 0.18], [0.16, 0.26], [0.16, 0.86], [0.02, 0.98]]
      - id: end-window
        kind: privacy_mask
        polygon:
          exterior: [[0.40, 0.10], [0.60, 0.10], [0.60, 0.50], [0.40, 0.50]]
          holes:
            - [[0.45, 0.20], [0.55, 0.20], [0.55, 0.30], [0.45, 0.30]]
        style: {mode: pixelate, block: 24}
  # A second camera, to copy zones from.
  - camera_id: lobby
    zones:
      - id: desk
        kind: watch
        polygon: [[0.30, 0.55], [0.55, 0.55], [0.55, 0.85], [0.30, 0.85]]
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def zones_file(folder: Path) -> Path:
    """ZONES_TEXT written as folder/zones.yaml."""
    path = folder / "zones.yaml"
    path.write_text(ZONES_TEXT, encoding="utf-8")
    return path


def make_console(zones: Path, snapshots: dict[str, str] | None = None,
                 make_auditor: Callable[[], Auditor] = Auditor, lang: str | None = None) -> Console:
    snaps: dict[str, Snapshot] = {cid: open_snapshot(v) for cid, v in (snapshots or {}).items()}
    return Console(ZonesDocument(zones, extra_cameras=list(snaps)), snaps, make_auditor=make_auditor, lang=lang)


def client(console: Console, token: str | None = TOKEN) -> TestClient:
    """A TestClient for the console app on 127.0.0.1:8765, sending the token header unless None."""
    app = console_app(console, policy_for(HOST, PORT, TOKEN))
    headers = {"X-Masking-Token": token} if token is not None else {}
    return TestClient(app, base_url=BASE, headers=headers)


def serve(console: Console) -> WebServer:
    """The console on a free loopback port, in a thread (stop() it)."""
    return WebServer(lambda policy: console_app(console, policy), host=HOST, port=0).start()
