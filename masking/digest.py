"""sha256 of a file's content, read in 1 MiB chunks (model files, footage)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def content_sha256(path: Path) -> str:
    """sha256 (hex) of the file's bytes, read now (see `models.cache.cached_sha256` for a memo)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
