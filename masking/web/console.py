"""The zones console (`masking ui`): the page, its JSON API and its static files.

API (every request carries the token; see `masking.web.security`):

* ``GET /api/cameras`` -> ``[{"camera_id", "site", "zones": n, "has_snapshot": bool}]``
* ``GET /api/cameras/{id}`` -> the camera as in the zones file, as JSON
* ``PUT /api/cameras/{id}`` with that JSON -> 200 and the saved camera, or 422
  ``{"errors": [{"zone", "field", "message"}]}`` with nothing written
* ``GET /api/cameras/{id}/snapshot.jpg`` (``?fresh=1``: a new frame from a stream)
* ``GET /api/cameras/{id}/preview.jpg?zones=[...]`` or ``POST`` with a camera draft (or a zones
  list): the snapshot masked with the draft zones by `ZoneMasker`, the code that masks recordings
* ``POST /api/cameras/{id}/audit`` with a draft -> the document `masking audit --json` writes

Drafts are validated with the zones-file models (`masking.config.draft`); saving goes through
`ZonesDocument` (round-trip YAML, backup, atomic write). The page is rendered in the language of
`--lang` or the browser's Accept-Language; the console's messages go to the JavaScript as JSON.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import jinja2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from masking.audit import Auditor, audit_json_document
from masking.config.draft import DraftError, error, validate_camera
from masking.config.roundtrip import ZonesDocument
from masking.config.zones import Camera
from masking.errors import ConfigError, InputError, MaskingError
from masking.i18n import catalogue, gettext_for, normalize_language
from masking.masks.apply import ZoneMasker
from masking.web.app import create_app
from masking.web.security import SecurityPolicy
from masking.web.snapshots import Snapshot

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("masking.web", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


@dataclass
class Console:
    """What one console serves.

    Args:
        document: the zones file being edited (the only file the console writes, with its backup).
        snapshots: camera id -> where its picture comes from.
        make_auditor: builds the `Auditor` on the first audit (models load once).
        lang: the page language (`zh`/`en`); None: the browser's Accept-Language.
    """

    document: ZonesDocument
    snapshots: dict[str, Snapshot]
    make_auditor: Callable[[], Auditor] = Auditor
    lang: str | None = None
    _auditor: Auditor | None = field(default=None, init=False, repr=False)
    _audit_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def auditor(self) -> Auditor:
        """The auditor, built once."""
        if self._auditor is None:
            self._auditor = self.make_auditor()
        return self._auditor

    def language(self, request: Request) -> str:
        """`--lang`, else `?lang=`, else the browser's Accept-Language."""
        for value in (self.lang, request.query_params.get("lang"), request.headers.get("accept-language")):
            if value:
                try:
                    return normalize_language(value)
                except ConfigError:
                    continue
        return normalize_language(None)


# --------------------------------------------------------------------------- helpers
def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _jpeg(image: np.ndarray) -> Response:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        return _error(500, "cannot encode the picture as JPEG")
    return Response(buf.tobytes(), media_type="image/jpeg")


def draft_camera(saved: dict[str, Any], body: Any) -> Camera:
    """The camera to preview or audit: the saved one with the draft's zones (or the whole draft).

    `body` is a camera draft (a JSON object, as PUT takes), a list of zones, or None (the saved zones).
    """
    camera_id = saved["camera_id"]
    if body is None:
        draft = saved
    elif isinstance(body, list):
        draft = {**saved, "zones": body}
    elif isinstance(body, dict):
        draft = {**body, "camera_id": body.get("camera_id", camera_id)}
    else:
        raise DraftError([error("expected a camera (JSON object) or a list of zones")])
    return validate_camera(draft, camera_id)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DraftError([error(f"request body is not valid JSON: {exc}")]) from exc


def _guard(handler: Callable[[Console, Request], Any], console: Console) -> Callable[[Request], Any]:
    """Run `handler`, turning the package's errors into JSON answers (no traceback reaches the page)."""

    async def endpoint(request: Request) -> Response:
        camera_id = request.path_params.get("camera_id")
        try:
            if camera_id is not None and console.document.camera(camera_id) is None:
                return _error(404, f"no camera {camera_id!r} in {console.document.path}")
            response: Response = await handler(console, request)
            return response
        except DraftError as exc:
            return JSONResponse({"errors": exc.errors}, status_code=422)
        except _NoSnapshot as exc:
            return _error(404, str(exc))
        except ConfigError as exc:  # the file on disk is invalid or unreadable now
            return _error(409, str(exc))
        except InputError as exc:  # a snapshot could not be read or grabbed
            return _error(502, str(exc))
        except MaskingError as exc:
            log.error("console: %s", exc)
            return _error(500, str(exc))

    return endpoint


def _snapshot(console: Console, camera_id: str) -> Snapshot:
    snap = console.snapshots.get(camera_id)
    if snap is None:
        raise _NoSnapshot(camera_id)
    return snap


class _NoSnapshot(InputError):
    def __init__(self, camera_id: str) -> None:
        super().__init__(f"no snapshot for camera {camera_id!r}: start `masking ui` with --snapshot {camera_id}=IMAGE_OR_URL")


# --------------------------------------------------------------------------- endpoints
async def page(console: Console, request: Request) -> Response:
    lang = console.language(request)
    _ = gettext_for(lang, "console")
    data = {"lang": lang, "messages": {**catalogue(lang, "common"), **catalogue(lang, "console")}}
    html = _TEMPLATES.get_template("console.html").render(
        _=_, lang=lang, html_lang="zh-CN" if lang == "zh" else "en", data=data, zones_file=console.document.path.name,
    )
    return HTMLResponse(html)


async def list_cameras(console: Console, request: Request) -> Response:
    cams = await run_in_threadpool(console.document.cameras)
    return JSONResponse([
        {"camera_id": c["camera_id"], "site": c.get("site"), "zones": len(c.get("zones") or []),
         "has_snapshot": c["camera_id"] in console.snapshots}
        for c in cams
    ])


async def get_camera(console: Console, request: Request) -> Response:
    return JSONResponse(console.document.camera(request.path_params["camera_id"]))


async def put_camera(console: Console, request: Request) -> Response:
    body = await _json_body(request)
    saved = await run_in_threadpool(console.document.save_camera, request.path_params["camera_id"], body)
    return JSONResponse(saved)


async def snapshot_jpg(console: Console, request: Request) -> Response:
    snap = _snapshot(console, request.path_params["camera_id"])
    fresh = request.query_params.get("fresh") not in (None, "", "0")
    return _jpeg(await run_in_threadpool(snap.frame, fresh))


async def preview_jpg(console: Console, request: Request) -> Response:
    camera_id = request.path_params["camera_id"]
    snap = _snapshot(console, camera_id)
    if request.method == "POST":
        body = await _json_body(request)
    else:
        query = request.query_params.get("zones")
        try:
            body = json.loads(query) if query else None
        except json.JSONDecodeError as exc:
            raise DraftError([error(f"`zones` is not valid JSON: {exc}", field="zones")]) from exc
    saved = console.document.camera(camera_id)
    assert saved is not None
    camera = draft_camera(saved, body)

    def masked() -> np.ndarray:
        frame = np.array(snap.frame(), copy=True)
        return ZoneMasker(camera).apply(frame)

    return _jpeg(await run_in_threadpool(masked))


async def audit(console: Console, request: Request) -> Response:
    camera_id = request.path_params["camera_id"]
    snap = _snapshot(console, camera_id)
    saved = console.document.camera(camera_id)
    assert saved is not None
    camera = draft_camera(saved, await _json_body(request))

    def run() -> dict[str, Any]:
        with console._audit_lock:
            auditor = console.auditor()
            result = snap.audit(auditor, camera)
            return audit_json_document([result], auditor.settings.model_dump(), str(console.document.path))

    return JSONResponse(await run_in_threadpool(run))


def console_routes(console: Console) -> list[BaseRoute]:
    """The console's page and API routes (static files are mounted by `create_app`)."""
    def r(path: str, handler: Callable[[Console, Request], Any], methods: list[str]) -> Route:
        return Route(path, _guard(handler, console), methods=methods)

    cam = "/api/cameras/{camera_id}"
    return [
        r("/", page, ["GET"]),
        r("/api/cameras", list_cameras, ["GET"]),
        r(cam, get_camera, ["GET"]),
        r(cam, put_camera, ["PUT"]),
        r(cam + "/snapshot.jpg", snapshot_jpg, ["GET"]),
        r(cam + "/preview.jpg", preview_jpg, ["GET", "POST"]),
        r(cam + "/audit", audit, ["POST"]),
    ]


def console_app(console: Console, policy: SecurityPolicy) -> ASGIApp:
    """The console as an ASGI app behind the security middleware."""
    return create_app(console_routes(console), policy, static_dir=STATIC_DIR)
