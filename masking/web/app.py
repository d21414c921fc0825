"""One Starlette app factory and one uvicorn runner for every masking web server.

`create_app(routes, policy)` wraps any routes in the `SecurityMiddleware`; `WebServer` binds the
socket first (so port 0 picks a free port and the Host check knows the real one), builds the
policy for that address, makes the app and runs uvicorn in the foreground or in a thread. The
console (`masking ui`) and the live-stream HTTP output use both.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from masking.errors import InputError
from masking.web.security import DEFAULT_CSP, SecurityMiddleware, SecurityPolicy

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    """A fresh access token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) stays on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _local_addresses() -> list[str]:
    import psutil

    out = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                out.append(a.address.split("%", 1)[0])
    return out


def allowed_hosts_for(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values a server bound to `host`:`port` answers.

    Loopback: 127.0.0.1, localhost and [::1]. A wildcard bind (0.0.0.0, ::): also this machine's
    names and interface addresses. Any other address: that address (and the loopback names).
    `extra` adds names (e.g. a DNS name the server is reached by), with or without a port.
    """
    names = {_url_host(h) for h in LOOPBACK_NAMES} | {_url_host(host)}
    if _is_wildcard(host):
        names |= {socket.gethostname(), socket.getfqdn()} | {_url_host(a) for a in _local_addresses()}
    hosts = {f"{n}:{port}".lower() for n in names if n}
    for e in extra:
        e = e.lower()
        hosts.add(e if e.rsplit(":", 1)[-1].isdigit() and not e.endswith("]") else f"{e}:{port}")
    return frozenset(hosts)


def policy_for(host: str, port: int, token: str | None = None, *, max_body_bytes: int = 1 << 20,
               extra_hosts: Iterable[str] = (), csp: str | None = None, stream: bool = False) -> SecurityPolicy:
    """The security policy of a server bound to `host`:`port` (a fresh token unless given).

    `stream`: a read-only stream server (the live-stream output): the token may travel as
    `?token=` in any GET URL, and on loopback no token is needed (a recorder on this machine)."""
    return SecurityPolicy(
        token=token or new_token(),
        allowed_hosts=allowed_hosts_for(host, port, extra_hosts),
        max_body_bytes=max_body_bytes,
        cookie_name=f"masking_token_{port}",
        csp=csp or DEFAULT_CSP,
        require_token=not (stream and is_loopback(host)),
        query_token=stream,
    )


def create_app(routes: Sequence[BaseRoute], policy: SecurityPolicy, static_dir: Path | None = None) -> Starlette:
    """A Starlette app serving `routes` (and `static_dir` under /static) behind the security middleware."""
    all_routes = list(routes)
    if static_dir is not None:
        all_routes.append(Mount("/static", app=StaticFiles(directory=static_dir, follow_symlink=False), name="static"))
    return Starlette(routes=all_routes, middleware=[Middleware(SecurityMiddleware, policy=policy)])


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (port 0: a free one); `InputError` if it cannot bind."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class WebServer:
    """A uvicorn server on a socket bound before the app is made.

    Args:
        make_app: builds the ASGI app from the policy (which knows the bound port and the token).
        host, port: where to listen (port 0: a free port). Not loopback: a warning is logged.
        token: the access token (default: a fresh one).
        extra_hosts: more Host values to accept (see `allowed_hosts_for`).
        stream: a read-only stream server (see `policy_for`).
    """

    def __init__(self, make_app: Callable[[SecurityPolicy], ASGIApp], host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, extra_hosts: Iterable[str] = (), stream: bool = False) -> None:
        if not is_loopback(host):
            log.warning("listening on %s, reachable from other machines: anyone with the token can use it", host)
        self.host = host
        self.sock = bind(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.policy = policy_for(host, self.port, token, extra_hosts=extra_hosts, stream=stream)
        self.app = make_app(self.policy)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                server_header=False, date_header=False)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://HOST:PORT of the server (a wildcard bind is shown as 127.0.0.1)."""
        host = "127.0.0.1" if _is_wildcard(self.host) else _url_host(self.host)
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The landing URL with the token: what a person opens."""
        return f"{self.base_url}{self.policy.landing_path}?token={self.policy.token}"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        self.server.run(sockets=[self.sock])

    def start(self, timeout_s: float = 10.0) -> WebServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name=f"web-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise InputError(f"web server on {self.base_url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop a server started with `start()` and wait for it."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
