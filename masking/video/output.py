"""Claiming an output path: one writer at a time, and a temporary name no other run shares.

`OutputLock(path)` takes an exclusive `fcntl.flock` on a hidden lock file beside `path`
(`.NAME.lock`); a second run writing the same output fails at once with `OutputError` (exit 2 from
the CLI) instead of interleaving with the first. The lock file is removed on release; a stale one
left by a killed run holds no lock and is simply reused. `unique_temp(path)` is where a writer puts
the file until it is complete: hidden, beside the target (same file system, so the final rename is
atomic), with a random part so two runs never write into the same temporary file.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path
from types import TracebackType

from masking.errors import OutputError


def lock_path(path: Path) -> Path:
    """The lock file guarding `path`."""
    return path.with_name(f".{path.name}.lock")


def unique_temp(path: Path) -> Path:
    """A fresh temporary name for `path`: `.STEM.<random>.partial<SUFFIX>` in the same folder (the
    suffix stays last so FFmpeg picks the container from it)."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")


class OutputLock:
    """An exclusive claim on an output path for as long as it is held (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the folder {self.path.parent}: {exc.strerror or exc}") from exc
        for _ in range(10):  # the holder may remove the file between our open and our lock: retry
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the lock file {self.lock_file}: {exc.strerror or exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                raise OutputError(
                    f"{self.path}: another run is writing this output (it holds {self.lock_file}); "
                    "wait for it to finish or choose another output"
                ) from exc
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)
        raise OutputError(f"{self.path}: could not take the lock {self.lock_file} (it keeps being replaced)")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.lock_file.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: the stale file holds no lock once the descriptor is closed
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
