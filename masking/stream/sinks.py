"""Sinks: where masked frames go. Every sink accepts `MaskedFrame` only (`require_masked`).

* `H264Sink`: an H.264 file via `masking.video.writer.VideoWriter` (written to a temporary name,
  renamed when closed cleanly), optionally cut into segments of `segment_seconds` of source time:
  `NAME_00000.mp4`, `NAME_00001.mp4`, ...; each segment is closed and renamed before the next opens.
* `RawSink`: raw bgr24 frames on a binary stream (stdout), for an existing recorder or ffmpeg.
* `JpegDirSink`: one JPEG per frame, `frame_<index>.jpg`, each written to a temporary name first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import cv2
import numpy as np

from masking.errors import OutputError
from masking.stream.frames import MaskedFrame, require_masked
from masking.stream.sources import SourceInfo
from masking.video.reader import StreamInfo
from masking.video.writer import VideoWriter

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


class H264Sink:
    """H.264 file(s); see the module docstring. Takes frames in `info.layout` (bgr24 or yuv420p)."""

    layouts = ("bgr24", "yuv420p")

    def __init__(self, path: str | Path, info: SourceInfo, segment_seconds: float | None = None,
                 crf: int = 20, preset: str = "veryfast", sealer: VaultSealer | None = None) -> None:
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
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path}: the folder {self.path.parent} does not exist")

    def _open(self, start_s: float) -> VideoWriter:
        target = segment_path(self.path, self._segment) if self.segment_seconds else self.path
        # BGR frames are converted to I420 here with OpenCV (SIMD, ~10x cheaper than the encoder's
        # own swscale conversion), so the writer always takes planar frames when the size is even.
        self._planar = self.info.planar_ok
        self._writer = VideoWriter(target, _stream_info(self.info), crf=self.crf, preset=self.preset,
                                   input_format="yuv420p" if self._planar else "bgr24")
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
        if frame.layout == "bgr24" and self._planar:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        elif frame.layout == "yuv420p" and not self._planar:
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

    def close(self) -> None:
        self._finish()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._sidecar is not None:  # vault
            self._sidecar.abort()
            self._sidecar = None


class RawSink:
    """Raw bgr24 frames, back to back, on a binary stream."""

    def __init__(self, stream: BinaryIO, name: str = "stdout", owns_stream: bool = False) -> None:
        self.stream = stream
        self.name = name
        self.owns_stream = owns_stream

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        if frame.layout != "bgr24":
            raise OutputError(f"{self.name}: raw output takes bgr24 frames, got {frame.layout}")
        try:
            self.stream.write(np.ascontiguousarray(frame.image).data)
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise OutputError(f"{self.name}: cannot write raw frames: {exc}") from exc

    def close(self) -> None:
        try:
            self.stream.flush()
            if self.owns_stream:
                self.stream.close()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise OutputError(f"{self.name}: cannot flush raw frames: {exc}") from exc

    def abort(self) -> None:
        try:
            self.stream.flush()
            if self.owns_stream:
                self.stream.close()
        except (BrokenPipeError, OSError, ValueError):
            log.debug("%s: flush on abort failed", self.name)


class JpegDirSink:
    """A folder of JPEGs named by frame index (`masking.video.images.write_image`: each file
    appears under its final name only when complete)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot create the output folder: {exc}") from exc

    def write(self, frame: MaskedFrame) -> None:
        from masking.video.images import write_image

        frame = require_masked(frame)
        if frame.layout != "bgr24":
            raise OutputError(f"{self.folder}: JPEG output takes bgr24 frames, got {frame.layout}")
        write_image(self.folder / f"frame_{frame.index:08d}.jpg", frame.image)

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None
