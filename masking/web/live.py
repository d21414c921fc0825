"""The `http` output of `masking serve`: each camera's masked stream, live, for recorders and players.

    GET /cameras                      the camera names (JSON)
    GET /cameras/{name}/stream.ts     MPEG-TS over HTTP, from the next keyframe, as long as it runs
    GET /cameras/{name}/index.m3u8    HLS playlist (MPEG-TS segments of about one keyframe interval)
    GET /cameras/{name}/seg_{n}.ts    one HLS segment

Several clients at once; a client that cannot keep up is dropped and never slows the camera or the
other clients (`masking.stream.live`). Bound to loopback by default; on any other address a token
is required (header `X-Masking-Token` or `?token=` in the URL, which recorders can carry).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from masking.errors import OutputError
from masking.stream.live import LiveHub
from masking.stream.queues import Closed

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def live_app(hub: LiveHub, token: str | None, wait_s: float = 15.0) -> Starlette:
    """The Starlette app serving `hub`; `token` None means no token (loopback only)."""

    def denied(request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("x-masking-token") or request.query_params.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("a valid token is required", status_code=401)
        return None

    def camera(request: Request) -> tuple[str, Response | None]:
        name = request.path_params["name"]
        if not hub.declared(name):
            return name, PlainTextResponse(f"no camera named {name!r}", status_code=404)
        return name, None

    async def cameras(request: Request) -> Response:
        return denied(request) or JSONResponse(hub.names())

    async def stream_ts(request: Request) -> Response:
        name, err = camera(request)
        if (bad := denied(request) or err) is not None:
            return bad
        streams = hub.get(name)
        if streams is None:
            return PlainTextResponse(f"camera {name!r} has not started yet; retry", status_code=503,
                                     headers={"Retry-After": "1"})
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
        if (bad := denied(request) or err) is not None:
            return bad
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
        if (bad := denied(request) or err) is not None:
            return bad
        streams = hub.get(name)
        data = streams[1].segment(int(request.path_params["seq"])) if streams else None
        if data is None:
            return PlainTextResponse("segment not available (expired or not yet made)", status_code=404)
        return Response(data, media_type="video/mp2t")

    routes = [
        Route("/cameras", cameras),
        Route("/cameras/{name}/stream.ts", stream_ts),
        Route("/cameras/{name}/index.m3u8", playlist),
        Route("/cameras/{name}/seg_{seq:int}.ts", segment),
    ]
    return Starlette(routes=routes)


class LiveServer:
    """uvicorn serving `live_app` in a background thread for as long as `masking serve` runs."""

    def __init__(self, hub: LiveHub, host: str = "127.0.0.1", port: int = 8090, token: str | None = None) -> None:
        import uvicorn

        if not is_loopback(host):
            if token is None:
                token = secrets.token_urlsafe(24)
            log.warning("live HTTP streams are served on %s, not loopback: every request needs the token", host)
        self.host, self.port, self.token = host, port, token
        config = uvicorn.Config(live_app(hub, token), host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-http", daemon=True)

    def url(self, name: str, what: str = "stream.ts") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        q = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/cameras/{name}/{what}{q}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        end = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise OutputError(f"cannot serve live streams on {self.host}:{self.port} (address in use?)")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5.0)
