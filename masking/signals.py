"""Stop signals for batch commands: SIGTERM handled like SIGINT, and the exit status they mean.

systemd, Kubernetes and `timeout` stop a program with SIGTERM; a person presses Ctrl-C (SIGINT).
Inside `sigterm_as_interrupt()` both raise `KeyboardInterrupt` in the main thread, so the same
clean-up runs for either (claims released, the run marked interrupted, the report of what is done
written). The CLI then exits 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """A stop signal turned into `KeyboardInterrupt`; `exit_status` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_status = 128 + signum


def exit_status(exc: BaseException) -> int:
    """The exit status of an interruption: 143 for SIGTERM, 130 for SIGINT (Ctrl-C)."""
    return int(getattr(exc, "exit_status", 128 + signal.SIGINT))


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Interrupted` like Ctrl-C does (main thread only; elsewhere a
    no-op). The previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
