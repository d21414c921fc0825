"""Atomic file writes: a hidden temporary file beside the target, then a rename.

A reader never sees a half-written output under its final name; on failure the temporary file is
removed and `OutputError` names the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from masking.errors import OutputError


def atomic_write(path: Path, data: bytes | str, what: str = "file") -> None:
    """Write `data` (str is UTF-8 encoded) to `path` atomically; `what` names it in errors."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write {what}: {exc.strerror or exc}") from exc
