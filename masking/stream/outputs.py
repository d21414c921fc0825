"""Several outputs per camera, all fed by the same masked frames.

`FanOut` is the camera's one sink. It hands every `MaskedFrame` to each output through the
output's own bounded queue and thread:

* recording outputs (H.264 files/segments, JPEG folders, raw pipes) are lossless: when one falls
  behind, the camera waits for it (back-pressure, as with a single file sink);
* live outputs (the HTTP/HLS stream and RTSP publishing, one shared encoder) are lossy: when the
  encoder falls behind, its oldest queued frame is dropped and counted, never the camera's.

A failing output is aborted (nothing partial stays under a final name), logged and counted; the
other outputs and the camera's own accounting go on. Only `MaskedFrame`s pass: `write` checks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from masking.stream.frames import MaskedFrame, require_masked
from masking.stream.queues import BoundedQueue, Closed
from masking.stream.sinks import Sink

log = logging.getLogger(__name__)


@dataclass
class OutputStats:
    """What one output of a camera did."""

    name: str
    written: int = 0
    dropped: int = 0
    failed: int = 0
    error: str | None = None
    files: list[str] = field(default_factory=list)

    def line(self) -> str:
        s = f"{self.name}: written={self.written} dropped={self.dropped} failed={self.failed}"
        return s + (f" error={self.error}" if self.error else "")


class _Lane:
    """One output: its queue, thread and counters."""

    _END = object()

    def __init__(self, camera: str, name: str, sink: Sink, lossy: bool, queue_size: int) -> None:
        self.camera = camera
        self.sink = sink
        self.lossy = lossy
        self.stats = OutputStats(name)
        self.queue: BoundedQueue[object] = BoundedQueue(queue_size)
        self.failed = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"out[{camera}:{name}]", daemon=True)
        self.thread.start()

    def put(self, frame: MaskedFrame) -> None:
        if self.failed.is_set():
            self.stats.failed += 1
            return
        if self.queue.put(frame, drop_oldest=self.lossy) is not None:
            self.stats.dropped += 1

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get()
            except Closed:
                return
            if item is self._END:
                return
            if self.failed.is_set():
                self.stats.failed += 1
                continue
            assert isinstance(item, MaskedFrame)
            try:
                self.sink.write(item)
                self.stats.written += 1
            except Exception as exc:
                self.stats.failed += 1
                self.stats.error = f"{type(exc).__name__}: {exc}"
                log.error("camera %s: output %s failed at frame %d: %s; the other outputs go on",
                          self.camera, self.stats.name, item.index, self.stats.error)
                self.failed.set()
                self._abort()

    def _abort(self) -> None:
        try:
            self.sink.abort()
        except Exception as exc:
            log.error("camera %s: aborting output %s failed too: %s", self.camera, self.stats.name, exc)

    def finish(self, abort: bool) -> None:
        self.queue.put_force(self._END)
        self.thread.join()
        if self.failed.is_set() or abort:
            self._abort()
            return
        try:
            self.sink.close()
            self.stats.files = [str(p) for p in getattr(self.sink, "files", [])]
        except Exception as exc:
            self.stats.error = f"closing failed: {type(exc).__name__}: {exc}"
            log.error("camera %s: closing output %s: %s", self.camera, self.stats.name, exc)


class FanOut:
    """The camera's sink when it has several outputs; see the module docstring.

    `write` raises only when every output has failed, so the engine's accounting then marks the
    camera's frames failed, exactly as with one failed sink.
    """

    def __init__(self, camera: str, outputs: list[tuple[str, Sink, bool]], queue_size: int = 8) -> None:
        if not outputs:
            raise ValueError("FanOut needs at least one output")
        self.camera = camera
        self.lanes = [_Lane(camera, name, sink, lossy, queue_size) for name, sink, lossy in outputs]
        self.files: list[str] = []
        self._done = False

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        if all(lane.failed.is_set() for lane in self.lanes):
            errors = "; ".join(f"{lane.stats.name}: {lane.stats.error}" for lane in self.lanes)
            raise OSError(f"every output of camera {self.camera} failed ({errors})")
        for lane in self.lanes:
            lane.put(frame)

    def _finish(self, abort: bool) -> None:
        if self._done:
            return
        self._done = True
        for lane in self.lanes:
            lane.finish(abort)
        self.files = [f for lane in self.lanes for f in lane.stats.files]
        for lane in self.lanes:
            log.info("camera %s: output %s", self.camera, lane.stats.line())

    def close(self) -> None:
        self._finish(abort=False)

    def abort(self) -> None:
        self._finish(abort=True)

    @property
    def stats(self) -> list[OutputStats]:
        return [lane.stats for lane in self.lanes]
