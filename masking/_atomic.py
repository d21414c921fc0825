"""Writing outputs: atomically for files, straight through for special files, with private modes.

* A regular file (or a new one) is written under a unique hidden temporary name beside the target
  (`.NAME.<random>.partial`), then renamed: a reader never sees a half-written output under its final
  name, two runs never share a temporary file, and on failure the temporary file is removed and
  `OutputError` names the path.
* `-` means standard output. A character device (`/dev/null`, a terminal), a FIFO, a socket, or an
  open descriptor (`/dev/stdout`, `/dev/fd/N`, even when the shell redirected it to a file) is
  written straight through, never replaced by a regular file.
* A symbolic link is followed deliberately: the file it points to is replaced atomically (the link
  stays a link). A link to a special file writes through to it.
* New files get a restrictive mode, whatever the umask: `0600` for reports, JSON and stores (they
  hold camera pictures and findings), `0640` for masked media. `$MASKING_REPORT_MODE` and
  `$MASKING_MEDIA_MODE` (octal, e.g. `0640`) change them.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from masking.errors import ConfigError, OutputError

REPORT_MODE = 0o600
MEDIA_MODE = 0o640
_MODE_ENV = {"report": ("MASKING_REPORT_MODE", REPORT_MODE), "media": ("MASKING_MEDIA_MODE", MEDIA_MODE)}
_MEDIA_WHATS = frozenset({"image", "video", "media"})
STDOUT = "-"


def output_mode(kind: str = "report") -> int:
    """The permission bits of new outputs of this kind (`report` or `media`), env overrides applied."""
    env, default = _MODE_ENV[kind]
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        mode = int(raw, 8)
    except ValueError:
        raise ConfigError(f"${env}={raw!r}: expected an octal file mode such as 0600") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"${env}={raw!r}: expected an octal file mode between 0000 and 0777")
    return mode


def is_write_through(path: str | Path) -> bool:
    """Whether `path` is `-` or (after following links) an existing non-regular, non-folder file:
    such outputs are written straight through instead of replaced."""
    if str(path) == STDOUT:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    if os.path.abspath(path).startswith(("/dev/", "/proc/")):  # /dev/stdout, /dev/fd/N: maybe a redirect
        return not stat.S_ISDIR(st.st_mode)
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def _open_descriptor(path: Path) -> int | None:
    """The descriptor a name such as `/dev/stdout` or `/dev/fd/3` stands for (None for other names):
    written through that descriptor, the output lands where the shell's redirect points, at its
    current offset, interleaved correctly with what the program prints."""
    name = os.path.abspath(path)
    fixed = {"/dev/stdout": 1, "/dev/stderr": 2}
    if name in fixed:
        return fixed[name]
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    return None


def _write_through(path: Path, data: bytes, what: str) -> None:
    try:
        fd = 1 if str(path) == STDOUT else _open_descriptor(path)
        if fd is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            return
        with open(path, "ab") as f:  # append: never truncates a special file (nor creates one)
            f.write(data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write {what}: {exc.strerror or exc}") from exc


def atomic_write(path: Path | str, data: bytes | str, what: str = "file", kind: str | None = None) -> None:
    """Write `data` (str is UTF-8 encoded) to `path` (see the module); `what` names it in errors;
    `kind` (`report` or `media`; default: `media` for images and videos, else `report`) sets the mode."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    if is_write_through(path):
        _write_through(path, payload, what)
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name for the {what}")
    mode = output_mode(kind or ("media" if what in _MEDIA_WHATS else "report"))
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(payload)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write {what}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def create_private(path: Path, kind: str = "report") -> None:
    """Create `path` empty with the private mode of `kind` if it does not exist yet (for files that
    another library opens, such as an SQLite store, so they never start world-readable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, output_mode(kind))
    except FileExistsError:
        return
    except OSError as exc:
        raise OutputError(f"{path}: cannot create: {exc.strerror or exc}") from exc
    os.fchmod(fd, output_mode(kind))
    os.close(fd)


def ensure_folder(path: Path, what: str = "output folder") -> None:
    """Create `path` (and its parents) if needed and check that files can be written in it, so a
    long run fails at once, not at its end; `OutputError` names the folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the {what}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the {what} is not writable (read-only folder or file system)")
