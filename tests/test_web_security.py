"""The web servers' security middleware: token, Host, Origin, JSON-only bounded bodies, paths, headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import BASE, HOST, PORT, TOKEN, client, make_console, zones_file
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from masking.web.app import WebServer, allowed_hosts_for, create_app, policy_for
from masking.web.console import STATIC_DIR


@pytest.fixture
def zones(tmp_path: Path) -> Path:
    return zones_file(tmp_path)


@pytest.fixture
def anon(zones: Path) -> TestClient:
    """The console app with no token sent."""
    return client(make_console(zones), token=None)


@pytest.fixture
def authed(zones: Path) -> TestClient:
    return client(make_console(zones))


def _fresh(app: Any, cookie: str | None = None) -> TestClient:
    """A client with an empty cookie jar (or just the token cookie) and no token header."""
    return TestClient(app, base_url=BASE, cookies={f"masking_token_{PORT}": cookie} if cookie else None)


def _camera(c: TestClient) -> dict[str, Any]:
    return c.get("/api/cameras/corridor-3f").json()  # type: ignore[no-any-return]


def test_every_route_needs_the_token(anon: TestClient, zones: Path) -> None:
    before = zones.read_bytes()
    for method, path in [("GET", "/"), ("GET", "/api/cameras"), ("GET", "/api/cameras/corridor-3f"),
                         ("GET", "/static/console.js"), ("GET", "/api/cameras/corridor-3f/snapshot.jpg"),
                         ("GET", "/nope"), ("PUT", "/api/cameras/corridor-3f"), ("POST", "/api/cameras/corridor-3f/audit")]:
        r = anon.request(method, path, json={} if method != "GET" else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert "corridor" not in r.text
        wrong = anon.request(method, path, headers={"X-Masking-Token": "guess"}, json={} if method != "GET" else None)
        assert wrong.status_code == 403, (method, path)
    assert _fresh(anon.app, cookie="guess").get("/api/cameras").status_code == 403
    assert zones.read_bytes() == before


def test_landing_url_sets_a_strict_httponly_cookie_and_drops_the_token(anon: TestClient) -> None:
    r = anon.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"masking_token_{PORT}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert _fresh(anon.app).get("/?token=wrong", follow_redirects=False).status_code == 403
    # the query token only works on the landing page
    assert _fresh(anon.app).get(f"/api/cameras?token={TOKEN}").status_code == 401
    page = _fresh(anon.app, cookie=TOKEN).get("/")
    assert page.status_code == 200 and TOKEN not in page.text


def test_wrong_host_is_refused_even_with_the_token(zones: Path) -> None:
    app_client = client(make_console(zones))
    for host in ("evil.example:8765", "127.0.0.1:8766", "localhost.evil.example:8765", "127.0.0.1:8765, evil.example"):
        r = app_client.get("/api/cameras", headers={"Host": host})
        assert r.status_code == 403 and r.json()["error"] == "host not allowed", host
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert app_client.get("/api/cameras", headers={"Host": host}).status_code == 200


def test_cross_origin_writes_are_refused(authed: TestClient, zones: Path) -> None:
    cam = _camera(authed)
    cam["zones"] = []
    before = zones.read_bytes()
    cookie = {f"masking_token_{PORT}": TOKEN}
    cases = [
        ({"Origin": "http://evil.example"}, None),
        ({"Origin": "http://127.0.0.1:8766"}, None),
        ({"Origin": "null"}, None),
        ({"Sec-Fetch-Site": "cross-site", "Origin": BASE}, None),
        ({"X-Masking-Token": ""}, cookie),  # cookie only, no Origin: could be a form from another site
    ]
    for headers, cookies in cases:
        c = TestClient(authed.app, base_url=BASE, headers={} if cookies else {"X-Masking-Token": TOKEN}, cookies=cookies)
        hdrs = {k: v for k, v in headers.items() if v}
        for method, path in [("PUT", "/api/cameras/corridor-3f"), ("POST", "/api/cameras/corridor-3f/audit"),
                             ("POST", "/api/cameras/corridor-3f/preview.jpg")]:
            r = c.request(method, path, json=cam, headers=hdrs)
            assert r.status_code == 403, (headers, method, r.status_code)
            assert not any(k.lower().startswith("access-control-") for k in r.headers)
    assert zones.read_bytes() == before
    # the page's own requests: cookie + same Origin
    same = TestClient(authed.app, base_url=BASE, cookies=cookie)
    ok = same.put("/api/cameras/corridor-3f", json=cam, headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200
    assert zones.read_bytes() != before


def test_bodies_must_be_small_json(zones: Path) -> None:
    console = make_console(zones)
    app = create_app([Route("/echo", _echo, methods=["POST"])], policy_for(HOST, PORT, TOKEN, max_body_bytes=1000))
    c = TestClient(app, base_url=BASE, headers={"X-Masking-Token": TOKEN})
    assert c.post("/echo", json={"a": "x" * 900}).status_code == 200
    big = c.post("/echo", json={"a": "x" * 1200})
    assert big.status_code == 413 and "1000 bytes" in big.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for _ in range(20):
            yield b" " * 100

    assert c.post("/echo", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
    assert c.post("/echo", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert c.post("/echo", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert c.post("/echo", content=b"{}").status_code == 415
    # the console's own limit (1 MiB) applies to its API
    cam = client(console)
    huge = {"camera_id": "corridor-3f", "zones": [], "site": "x" * (1 << 20)}
    before = zones.read_bytes()
    assert cam.put("/api/cameras/corridor-3f", json=huge).status_code == 413
    assert zones.read_bytes() == before


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"got": len(await request.body())})


def _raw_get(app: Any, raw_path: bytes) -> tuple[int, bytes]:
    """Send a request with an exact path (no client-side normalisation of `..`) straight to the app."""
    from urllib.parse import unquote_to_bytes

    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8", "replace"), "raw_path": raw_path, "query_string": b"",
        "root_path": "", "headers": [(b"host", f"{HOST}:{PORT}".encode()), (b"x-masking-token", TOKEN.encode())],
        "client": ("127.0.0.1", 5000), "server": (HOST, PORT),
    }

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:  # then the client just waits for the answer
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_dot_dot_paths_never_leave_the_static_folder(authed: TestClient) -> None:
    secret = (STATIC_DIR.parent / "console.py").read_bytes()[:200]
    for raw in (b"/static/../console.py", b"/static/%2e%2e/console.py", b"/static/..%2fconsole.py",
                b"/static/%2E%2E%2Fconsole.py", b"/static/..\\console.py", b"/static/./console.js",
                b"/api/cameras/..%2f..%2fetc%2fpasswd", b"/static/%00console.js"):
        status, body = _raw_get(authed.app, raw)
        assert status == 404, raw
        assert secret not in body
    assert _raw_get(authed.app, b"/static/console.js")[0] == 200


def test_no_cors_and_strict_headers(authed: TestClient) -> None:
    r = authed.get("/api/cameras", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200  # a GET reads nothing the other site can see: no CORS headers
    assert not any(k.lower().startswith("access-control-") for k in r.headers)
    pre = TestClient(authed.app, base_url=BASE).options(
        "/api/cameras/corridor-3f", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"})
    assert pre.status_code == 401 and not any(k.lower().startswith("access-control-") for k in pre.headers)
    page = authed.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_the_console_writes_only_its_zones_file_and_backup(tmp_path: Path, zones: Path) -> None:
    c = client(make_console(zones))
    cam = _camera(c)
    for k in range(3):
        cam["zones"][0]["polygon"][0] = [0.01 * (k + 1), 0.18]
        assert c.put("/api/cameras/corridor-3f", json=cam).status_code == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zones.yaml", "zones.yaml.bak"]


def test_binding_beyond_loopback_warns_and_accepts_this_machines_names(caplog: pytest.LogCaptureFixture, zones: Path) -> None:
    console = make_console(zones)
    from masking.web.console import console_app

    with caplog.at_level(logging.WARNING, logger="masking.web.app"):
        server = WebServer(lambda p: console_app(console, p), host="0.0.0.0", port=0)
    try:
        assert any("reachable from other machines" in r.message for r in caplog.records)
        assert f"127.0.0.1:{server.port}" in server.policy.allowed_hosts
        assert len(server.policy.allowed_hosts) > 3
    finally:
        server.sock.close()
    with caplog.at_level(logging.WARNING, logger="masking.web.app"):
        caplog.clear()
        local = WebServer(lambda p: console_app(console, p), port=0)
    local.sock.close()
    assert not caplog.records
    assert local.url.startswith(f"http://127.0.0.1:{local.port}/?token=") and len(local.policy.token) >= 40
    assert allowed_hosts_for("127.0.0.1", 80, ["cams.example"]) >= {"cams.example:80", "localhost:80"}
