"""Small encoding helpers shared by the vault modules: canonical JSON, base64, file hashes, time."""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masking.errors import VaultError


def canonical(obj: Any) -> bytes:
    """The one byte form of a JSON value that is hashed or signed (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    """Decode base64 `text`; `VaultError` naming `what` when it is not valid base64."""
    if not isinstance(text, str):
        raise VaultError(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise VaultError(f"{what}: not valid base64") from exc


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise VaultError(f"{path}: cannot read to hash: {exc.strerror or exc}") from exc
    return h.hexdigest()


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def operator() -> str:
    """Who runs this process, as the register records it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
