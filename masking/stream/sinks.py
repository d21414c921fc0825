"""Sinks: where masked frames go. Every sink accepts `MaskedFrame` only (`require_masked`).

* `H264Sink`: an H.264 file via `masking.video.writer.VideoWriter` (written to a temporary name,
  renamed when closed cleanly), optionally cut into segments of `segment_seconds` of source time:
  `NAME_00000.mp4`, `NAME_00001.mp4`, ...; each segment is closed and renamed before the next opens.
* `RawSink`: raw bgr24 frames on a binary stream (stdout) or into a file (temporary name, renamed).
* `JpegDirSink`: one JPEG per frame, `frame_<index>.jpg`, each written to a temporary name first.
* `ImageSink`: still images (an image input, a folder of images) under their own names.

Every sink writing files holds its output's lock (`masking.video.output.OutputLock`) from creation
to close/abort, so a second run writing the same output fails at once. `abort()` removes what is
not complete; complete files (finished segments, JPEGs, images) stay and are listed in `files`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import cv2
import numpy as np

from masking.errors import OutputError
from masking.stream.frames import MaskedFrame, require_masked
from masking.stream.sources import SourceInfo
from masking.video.encoding import DEFAULT_PRESET
from masking.video.images import write_image
from masking.video.layout import PixelLayout
from masking.video.output import OutputLock, unique_temp
from masking.video.reader import StreamInfo
from masking.video.writer import VideoWriter, check_video_suffix

if TYPE_CHECKING:  # vault (issue 12)
    from masking.vault.recorder import VaultSealer
    from masking.vault.seal import SidecarWriter

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Consumes masked frames."""

    def write(self, frame: MaskedFrame) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _stream_info(info: SourceInfo) -> StreamInfo:
    return StreamInfo(width=info.width, height=info.height, fps=info.fps, time_base=info.time_base, frames=None, codec="h264")


def segment_path(path: Path, n: int) -> Path:
    """The file name of segment `n` of a segmented output."""
    return path.with_name(f"{path.stem}_{n:05d}{path.suffix or '.mp4'}")


def _bgr(frame: MaskedFrame, name: object, what: str) -> np.ndarray:
    if frame.layout is not PixelLayout.bgr24:
        raise OutputError(f"{name}: {what} takes bgr24 frames, got {frame.layout}")
    return frame.image


class H264Sink:
    """H.264 file(s); see the module docstring. Takes frames in `info.layout` (bgr24 or yuv420p)."""

    layouts = (PixelLayout.bgr24, PixelLayout.yuv420p)

    def __init__(self, path: str | Path, info: SourceInfo, segment_seconds: float | None = None,
                 crf: int = 20, preset: str = DEFAULT_PRESET, sealer: VaultSealer | None = None) -> None:
        self.path = Path(path)
        self.sealer = sealer  # vault (issue 12): each segment gets a sealed sidecar, closed with it
        self._sidecar: SidecarWriter | None = None
        self.info = info
        self.segment_seconds = segment_seconds
        self.crf = crf
        self.preset = preset
        self._writer: VideoWriter | None = None
        self._segment = 0
        self._segment_start: float | None = None
        self.files: list[Path] = []
        check_video_suffix(segment_path(self.path, 0) if segment_seconds else self.path)
        # BGR frames are converted to I420 here with OpenCV (SIMD, ~10x cheaper than the encoder's
        # own swscale conversion), so the writer always takes planar frames when the size is even.
        self._planar = info.planar_ok
        self._lock: OutputLock | None = OutputLock(self.path)  # creates the folder, as the writer did

    def _open(self, start_s: float) -> VideoWriter:
        target = segment_path(self.path, self._segment) if self.segment_seconds else self.path
        self._writer = VideoWriter(target, _stream_info(self.info), crf=self.crf, preset=self.preset,
                                   input_format=PixelLayout.yuv420p if self._planar else PixelLayout.bgr24, lock=False)
        self._segment_start = start_s
        self._target = target
        if self.sealer is not None:  # vault
            self._sidecar = self.sealer.open(target, self.info.layout, self.info.width, self.info.height, self.info.time_base)
        return self._writer

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        t = float(frame.pts * frame.time_base)
        if self._writer is not None and self.segment_seconds and t - (self._segment_start or 0.0) >= self.segment_seconds - 1e-9:
            self._finish()
            self._segment += 1
        writer = self._writer if self._writer is not None else self._open(t)
        pts = frame.pts if frame.time_base == self.info.time_base else round(frame.pts * frame.time_base / self.info.time_base)
        image: np.ndarray = frame.image
        if frame.layout is PixelLayout.bgr24 and self._planar:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        elif frame.layout is PixelLayout.yuv420p and not self._planar:
            raise OutputError(f"{self.path}: yuv420p frames need an even frame size")
        writer.write(image, pts)
        if self._sidecar is not None:  # vault
            self._sidecar.add(pts, frame.regions)

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            if self._sidecar is not None:  # vault: the sidecar is finished and registered with its segment
                sidecar, self._sidecar = self._sidecar, None
                assert self.sealer is not None
                self.sealer.closed(self._target, sidecar)
            self.files.append(self._target)
            log.info("closed %s", self._target)
            self._writer = None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        try:
            self._finish()
        finally:
            self._release()

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            if self._sidecar is not None:  # vault
                self._sidecar.abort()
                self._sidecar = None
        finally:
            self._release()


class RawSink:
    """Raw bgr24 frames, back to back, on a binary stream; `RawSink.to_file` for a file."""

    def __init__(self, stream: BinaryIO, name: str = "stdout", owns_stream: bool = False) -> None:
        self.stream = stream
        self.name = name
        self.owns_stream = owns_stream
        self.files: list[Path] = []
        self._final: Path | None = None
        self._tmp: Path | None = None
        self._lock: OutputLock | None = None

    @classmethod
    def to_file(cls, path: str | Path) -> RawSink:
        """Raw frames into `path`: a temporary name while writing, renamed by `close`."""
        final = Path(path)
        lock = OutputLock(final)
        tmp = unique_temp(final)
        try:
            stream = tmp.open("wb")
        except OSError as exc:
            lock.release()
            raise OutputError(f"{final}: cannot create raw output: {exc.strerror or exc}") from exc
        sink = cls(stream, str(final), owns_stream=True)
        sink._final, sink._tmp, sink._lock = final, tmp, lock
        return sink

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        image = _bgr(frame, self.name, "raw output")
        try:
            self.stream.write(np.ascontiguousarray(image).data)
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise OutputError(f"{self.name}: cannot write raw frames: {exc}") from exc

    def close(self) -> None:
        try:
            self.stream.flush()
            if self.owns_stream:
                self.stream.close()
            if self._tmp is not None and self._final is not None:
                os.replace(self._tmp, self._final)
                self.files.append(self._final)
                self._tmp = None
        except (BrokenPipeError, OSError, ValueError) as exc:
            self.abort()
            raise OutputError(f"{self.name}: cannot flush raw frames: {exc}") from exc
        finally:
            self._release()

    def abort(self) -> None:
        try:
            self.stream.flush()
            if self.owns_stream:
                self.stream.close()
        except (BrokenPipeError, OSError, ValueError):
            log.debug("%s: flush on abort failed", self.name)
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class _FilesSink:
    """Complete files, one per frame, in a folder it holds the lock of (JPEG and image sinks)."""

    def __init__(self, lock_on: Path, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from exc
        self._lock: OutputLock | None = OutputLock(lock_on)
        self.files: list[Path] = []

    def _write(self, path: Path, frame: MaskedFrame, what: str) -> None:
        write_image(path, _bgr(require_masked(frame), path, what))
        self.files.append(path)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def abort(self) -> None:
        self.close()  # every file written is complete (atomic writes): they stay, listed in `files`


class JpegDirSink(_FilesSink):
    """A folder of JPEGs named by frame index (`masking.video.images.write_image`: each file
    appears under its final name only when complete)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        super().__init__(self.folder, self.folder)

    def write(self, frame: MaskedFrame) -> None:
        self._write(self.folder / f"frame_{frame.index:08d}.jpg", frame, "JPEG output")


class ImageSink(_FilesSink):
    """Still images: the frame of image i (its pts, `ImageSource`) is written to `targets[i]` (one
    image, or a folder's images by name; a skipped unreadable image leaves no gap in the names)."""

    def __init__(self, output: str | Path, targets: list[Path]) -> None:
        self.output = Path(output)
        self.targets = targets
        super().__init__(self.output, targets[0].parent if targets else self.output)

    def write(self, frame: MaskedFrame) -> None:
        if not 0 <= frame.pts < len(self.targets):
            raise OutputError(f"{self.output}: no output name for image {frame.pts}")
        self._write(self.targets[frame.pts], frame, "image output")
