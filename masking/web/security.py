"""The security middleware every masking web server runs behind (console, live-stream output).

One pure-ASGI middleware enforces, before any route runs:

* **paths**: no `..` segment, backslash or NUL in the path (404), so no route or static file can
  be reached outside its folder;
* **Host**: the Host header must be one the server was bound for (403): a DNS-rebinding page on
  another name cannot talk to a loopback server;
* **token**: every request carries the access token, in the `X-Masking-Token` header or in the
  cookie the landing page sets (`GET /?token=...` answers 303 to `/` with an HttpOnly,
  SameSite=Strict cookie, so the token leaves the address bar). No token: 401; a wrong one: 403.
  Tokens are compared in constant time;
* **state-changing requests** (anything but GET/HEAD): the Origin, when sent, must be the
  server's own (403); a request authenticated by the cookie alone must send one (browsers do),
  and `Sec-Fetch-Site`, when sent, must say same-origin; the body must be JSON
  (`Content-Type: application/json`, else 415) and at most `max_body_bytes` long (413), counted
  while it is read, whatever Content-Length says;
* **headers**: no CORS header ever leaves the server (any `access-control-*` header a route sets is
  dropped), and every response carries a Content-Security-Policy that allows only the server's own
  origin, `nosniff`, `no-referrer`, `DENY` framing and `no-store`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = "x-masking-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True)
class SecurityPolicy:
    """What the middleware enforces for one server.

    Attributes:
        token: the access token (see `masking.web.app.new_token`).
        allowed_hosts: Host header values accepted, lower case, with the port ("127.0.0.1:8765").
        max_body_bytes: the largest request body accepted.
        cookie_name: the token cookie; cookies do not separate ports, so it names the port.
        landing_path: the page where `?token=` is accepted and turned into the cookie.
        csp: the Content-Security-Policy sent with every response.
        require_token: False only for a read-only server bound to loopback (the live-stream
            output: a recorder on the same machine); every other check still applies.
        query_token: also accept `?token=` on every GET (recorders and players can carry a token
            in a URL, not in a header or cookie); off for the console.
    """

    token: str
    allowed_hosts: frozenset[str]
    max_body_bytes: int = 1 << 20
    cookie_name: str = "masking_token"
    landing_path: str = "/"
    csp: str = DEFAULT_CSP
    require_token: bool = True
    query_token: bool = False

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The Origin values of pages this server served itself."""
        return frozenset(f"http://{h}" for h in self.allowed_hosts)

    def token_ok(self, value: str | None) -> bool:
        """Whether `value` is the token (constant-time comparison)."""
        return value is not None and hmac.compare_digest(value.encode("utf-8"), self.token.encode("utf-8"))


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        if name in out:  # repeated headers are joined (a repeated Host then matches no allowed host)
            value = f"{out[name]}{'; ' if name == 'cookie' else ', '}{value}"
        out[name] = value
    return out


def _cookie(headers: dict[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is treated as no cookie
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _bad_path(path: str) -> bool:
    return "\\" in path or "\x00" in path or any(seg in ("..", ".") for seg in path.split("/"))


async def _respond(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        + (headers or []),
    })
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """The request body exceeded the policy's limit while it was read."""


class SecurityMiddleware:
    """Pure ASGI middleware enforcing a `SecurityPolicy` (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy
        self._security_headers = [
            (b"content-security-policy", policy.csp.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        send = self._wrap_send(send)
        if scope["type"] != "http":  # websockets: not offered
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        refusal = self._check(scope)
        if refusal is not None:
            status, message, extra = refusal
            log.info("refused %s %s: %d %s", scope.get("method"), scope.get("path"), status, message)
            await _respond(send, status, message, extra)
            return
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except BodyTooLarge:
            await _respond(send, 413, f"request body larger than {self.policy.max_body_bytes} bytes")
            return
        await self.app(scope, _replay(body, receive), send)

    def _check(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]] | None] | None:
        """(status, message, extra headers) when the request is refused, else None."""
        p = self.policy
        path = scope.get("path", "")
        raw = scope.get("raw_path") or b""
        if _bad_path(path) or _bad_path(raw.decode("latin-1")):
            return 404, "not found", None
        headers = _headers(scope)
        if headers.get("host", "").lower() not in p.allowed_hosts:
            return 403, "host not allowed", None
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method == "GET" and path == p.landing_path and "token" in query:
            if not p.token_ok(query["token"][0]):
                return 403, "wrong token", None
            cookie = f"{p.cookie_name}={p.token}; Path=/; HttpOnly; SameSite=Strict"
            return 303, "see /", [(b"location", p.landing_path.encode()), (b"set-cookie", cookie.encode())]
        if not p.require_token and method in SAFE_METHODS:
            return None
        supplied, via = headers.get(TOKEN_HEADER), "header"
        if supplied is None:
            supplied, via = _cookie(headers, p.cookie_name), "cookie"
        if supplied is None and p.query_token and method in SAFE_METHODS and "token" in query:
            supplied, via = query["token"][0], "query"
        if supplied is None:
            return 401, "access token required: open the URL with ?token= the server printed, or send X-Masking-Token", None
        if not p.token_ok(supplied):
            return 403, "wrong token", None
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin not in p.allowed_origins:
            return 403, "cross-origin request refused", None
        if origin is None and via == "cookie":
            return 403, "a request authenticated by cookie must send its Origin", None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, "cross-site request refused", None
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return 415, "request bodies must be JSON (Content-Type: application/json)", None
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > p.max_body_bytes):
            return 413, f"request body larger than {p.max_body_bytes} bytes", None
        return None

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.policy.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _wrap_send(self, send: Send) -> Send:
        extra = self._security_headers

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
                names = {k.lower() for k, _ in kept}
                message["headers"] = kept + [(k, v) for k, v in extra if k not in names]
            await send(message)

        return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect when the client goes away

    return replay
