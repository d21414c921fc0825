"""The `http` output of `masking serve`: each camera's masked stream, live, for recorders and players.

    GET /                             the cameras, with links to their players (HTML)
    GET /cameras                      the camera names (JSON)
    GET /cameras/{name}/              a player page (HTML5 video of the HLS playlist)
    GET /player.js                    the player page's only script: reloads a stalled or refused stream
    GET /cameras/{name}/stream.ts     MPEG-TS over HTTP, from the next keyframe, as long as it runs
    GET /cameras/{name}/index.m3u8    HLS playlist (MPEG-TS segments of about one keyframe interval)
    GET /cameras/{name}/seg_{n}.ts    one HLS segment

Several clients at once; a client that cannot keep up is dropped and never slows the camera or the
other clients (`masking.stream.live`). The server runs behind the same security middleware as the
console (`masking.web.security`: Host check, no CORS, strict headers, nothing but GET); bound to
loopback it needs no token (a recorder on this machine), on any other address every request needs
the token: header `X-Masking-Token`, `?token=` in the URL (which recorders can carry), or the
cookie that opening `/?token=...` sets in a browser.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from masking.errors import OutputError
from masking.stream.live import LiveHub
from masking.stream.queues import Closed
from masking.web.app import WebServer, create_app
from masking.web.security import SecurityPolicy

log = logging.getLogger(__name__)

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
</head><body>{body}</body></html>"""  # no inline style or script: the middleware's CSP allows neither (scripts are files)


# Chromium now and then refuses a live playlist opened in a stream's first seconds, or stalls on it;
# a person would press reload: the page does it for them (at most 30 times, 1 s apart).
_PLAYER_JS = """"use strict";
const v = document.getElementById("v");
const src = v.getAttribute("src");
let tries = 0, last = -1, still = 0;
function reload() {
  if (tries >= 30) return;
  tries += 1;
  v.src = src;
  v.load();
  v.play().catch(() => {});
}
v.addEventListener("error", () => setTimeout(reload, 1000));
setInterval(() => {
  if (v.paused && v.readyState > 0) return;
  still = v.currentTime === last ? still + 1 : 0;
  last = v.currentTime;
  if (still >= 8) { still = 0; reload(); }
}, 1000);
"""


def live_routes(hub: LiveHub, wait_s: float = 15.0) -> list[BaseRoute]:
    """The routes serving `hub` (put them behind the security middleware: `live_app`)."""

    def camera(request: Request) -> tuple[str, Response | None]:
        name = request.path_params["name"]
        if not hub.declared(name):
            return name, PlainTextResponse(f"no camera named {name!r}", status_code=404)
        return name, None

    async def cameras(request: Request) -> Response:
        return JSONResponse(hub.names())

    async def stream_ts(request: Request) -> Response:
        name, err = camera(request)
        if err is not None:
            return err
        deadline = time.monotonic() + wait_s
        while (streams := hub.get(name)) is None:  # a recorder connecting at start-up waits for the first frame
            if time.monotonic() > deadline:
                return PlainTextResponse(f"camera {name!r} has not started yet; retry", status_code=503,
                                         headers={"Retry-After": "1"})
            await anyio.sleep(0.1)
        ts = streams[0]
        try:
            client = ts.connect()
        except OutputError as exc:
            return PlainTextResponse(str(exc), status_code=410)

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:
                        chunk = await anyio.to_thread.run_sync(client.queue.get, 0.5)
                    except TimeoutError:
                        continue
                    except Closed:
                        return
                    yield chunk
            finally:
                ts.disconnect(client)
                log.info("camera %s: HTTP TS client left", name)

        return StreamingResponse(body(), media_type="video/mp2t", headers={"Cache-Control": "no-store"})

    async def playlist(request: Request) -> Response:
        name, err = camera(request)
        if err is not None:
            return err
        deadline = time.monotonic() + wait_s
        while True:  # a player asking right at start-up waits for the first segment
            streams = hub.get(name)
            if streams is not None and streams[1].ready():
                break
            if time.monotonic() > deadline:
                return PlainTextResponse(f"camera {name!r} has no segment yet; retry", status_code=503,
                                         headers={"Retry-After": "1"})
            await anyio.sleep(0.1)
        return Response(streams[1].playlist(), media_type="application/vnd.apple.mpegurl",
                        headers={"Cache-Control": "no-store"})

    async def segment(request: Request) -> Response:
        name, err = camera(request)
        if err is not None:
            return err
        streams = hub.get(name)
        data = streams[1].segment(int(request.path_params["seq"])) if streams else None
        if data is None:
            return PlainTextResponse("segment not available (expired or not yet made)", status_code=404)
        return Response(data, media_type="video/mp2t")

    async def index(request: Request) -> Response:
        items = "".join(f'<li><a href="/cameras/{quote(n, safe="")}/">{html.escape(n)}</a></li>'
                        for n in hub.names())
        return HTMLResponse(_PAGE.format(title="masking: live cameras", body=f"<ul>{items}</ul>"))

    async def player(request: Request) -> Response:
        name, err = camera(request)
        if err is not None:
            return err
        body = (f'<video id="v" src="/cameras/{quote(name, safe="")}/index.m3u8" autoplay muted playsinline controls '
                'width="100%"></video><script src="/player.js"></script>')
        return HTMLResponse(_PAGE.format(title=f"masking: {html.escape(name)}", body=body))

    return [
        Route("/", index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/player.js", lambda request: Response(_PLAYER_JS, media_type="text/javascript")),
        Route("/cameras", cameras),
        Route("/cameras/{name}/", player),
        Route("/cameras/{name}/stream.ts", stream_ts),
        Route("/cameras/{name}/index.m3u8", playlist),
        Route("/cameras/{name}/seg_{seq:int}.ts", segment),
    ]


def live_app(hub: LiveHub, policy: SecurityPolicy, wait_s: float = 15.0) -> ASGIApp:
    """The live-stream app: `live_routes` behind the security middleware."""
    return create_app(live_routes(hub, wait_s), policy)


class LiveServer:
    """The live-stream HTTP server of `masking serve`, in a background thread (`WebServer`)."""

    def __init__(self, hub: LiveHub, host: str = "127.0.0.1", port: int = 8090, token: str | None = None) -> None:
        self._web = WebServer(lambda policy: live_app(hub, policy), host=host, port=port, token=token, stream=True)

    @property
    def token(self) -> str | None:
        """The token URLs must carry, or None (loopback: not needed)."""
        return self._web.policy.token if self._web.policy.require_token else None

    def url(self, name: str, what: str = "stream.ts") -> str:
        q = f"?token={self.token}" if self.token else ""
        return f"{self._web.base_url}/cameras/{quote(name, safe='')}/{what}{q}"

    def start(self) -> None:
        try:
            self._web.start()
        except Exception as exc:
            raise OutputError(f"cannot serve live streams on {self._web.base_url}: {exc}") from exc

    def stop(self) -> None:
        self._web.stop()
