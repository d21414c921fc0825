"""Encode frames to a video file with PyAV, keeping source PTS; written to a temp name, then renamed.

Outputs are H.264 in the container the suffix names (`VIDEO_SUFFIXES`); the writer holds the
output's lock (`masking.video.output.OutputLock`) unless its caller already does, and writes to a
temporary name of its own (`unique_temp`), so two runs never share or corrupt a file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import av.error
import av.video.stream
import numpy as np
import numpy.typing as npt

from masking._atomic import output_mode
from masking.errors import OutputError
from masking.video.encoding import DEFAULT_PRESET, encoder_options
from masking.video.layout import PixelLayout
from masking.video.output import OutputLock, unique_temp
from masking.video.reader import StreamInfo

log = logging.getLogger(__name__)


# Containers that take H.264 from libx264 (the suffix picks the container).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".ts")


def check_video_suffix(path: Path) -> None:
    """`OutputError` unless `path` names a container the H.264 writer can fill."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        what = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        hint = " (GIF holds no H.264; convert the masked .mp4 with any tool if a GIF is needed)" if path.suffix.lower() == ".gif" else ""
        raise OutputError(f"{path}: {what} is not a video container masking writes{hint}; "
                          f"use one of {', '.join(VIDEO_SUFFIXES)}")


class VideoWriter:
    """Write a video stream frame by frame; the file appears under its final name only when complete.

    Frames keep the PTS they are given (in `info.time_base` units); the stream gets the source's frame
    rate and size. `close()` flushes the encoder and renames the temp file to `path`; `abort()` (or
    leaving the `with` block by an exception) deletes it.

    Args:
        path: final output path; its suffix picks the container (.mp4, .mkv, .mov, ...).
        info: geometry and timing of the source stream.
        codec: encoder name. libx264 by default (H.264 plays everywhere).
        crf: x264 constant rate factor, 0-51: 20 keeps masks crisp at moderate size.
        preset: one of `ENCODER_PRESETS` (`masking.video.encoding`); `ingest` (default): veryfast's
            file size for 60% of its CPU.
        input_format: layout of the arrays given to `write`: "bgr24" (H, W, 3) or "yuv420p" (H*3/2, W).
        lock: take the output's lock (False when the caller holds it, e.g. a segmented sink).
    """

    def __init__(
        self,
        path: str | Path,
        info: StreamInfo,
        codec: str = "libx264",
        crf: int = 20,
        preset: str = DEFAULT_PRESET,
        input_format: str = PixelLayout.bgr24,
        lock: bool = True,
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.input_format = PixelLayout(input_format)
        self.frames_written = 0
        check_video_suffix(self.path)
        self._tmp = unique_temp(self.path)
        self._last_pts: int | None = None
        self._step = max(1, round(1 / (info.fps * info.time_base))) if info.fps and info.time_base else 1
        self._closed = False
        options = encoder_options(codec, preset, crf)
        self._lock = OutputLock(self.path) if lock else None
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._release()
            raise OutputError(f"{self.path}: cannot create video file: {exc}") from exc
        try:
            stream = cast(av.video.stream.VideoStream, self._container.add_stream(codec, rate=info.fps))
            stream.width, stream.height = info.width, info.height
            # x264 4:2:0 needs even sizes; odd-sized sources are kept at full size in 4:4:4.
            even = info.width % 2 == 0 and info.height % 2 == 0
            stream.pix_fmt = "yuv420p" if even else "yuv444p"
            stream.time_base = info.time_base
            stream.codec_context.time_base = info.time_base
            stream.codec_context.thread_count = 0  # encoder picks its thread count
            if codec in ("libx264", "libx265"):
                stream.options = dict[str, object](options)
            self._stream = stream
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._discard()
            raise OutputError(f"{self.path}: cannot set up encoder {codec}: {exc}") from exc

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def write(self, image: npt.NDArray[np.uint8], pts: int | None) -> None:
        """Encode one frame with presentation timestamp `pts` (in `info.time_base` units)."""
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        w, h = self.info.width, self.info.height
        expected = self.input_format.shape(w, h)
        if image.shape != expected or image.dtype != np.uint8:
            raise OutputError(
                f"{self.path}: cannot encode frame {self.frames_written}: expected a uint8 "
                f"{self.input_format} array of shape {expected}, got {image.dtype} {image.shape}"
            )
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            fixed = 0 if self._last_pts is None else self._last_pts + (self._step if pts is None else 1)
            if pts is not None:
                log.warning(
                    "%s: frame %d has non-increasing PTS %d; written as %d", self.path, self.frames_written, pts, fixed
                )
            pts = fixed
        try:
            frame = av.VideoFrame.from_ndarray(image, format=self.input_format.value)
            frame.pts = pts
            frame.time_base = self.info.time_base
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"{self.path}: cannot encode frame {self.frames_written}: {exc}") from exc
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to its final name."""
        if self._closed:
            return
        if self.frames_written == 0:
            self._discard()
            raise OutputError(f"{self.path}: no frames were given; no file is written")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._closed = True
            os.chmod(self._tmp, output_mode("media"))  # 0640 unless $MASKING_MEDIA_MODE says otherwise
            os.replace(self._tmp, self.path)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._discard()
            raise OutputError(f"{self.path}: cannot finish video file: {exc}") from exc
        finally:
            self._release()
        log.info("%s: %d frames written", self.path, self.frames_written)

    def abort(self) -> None:
        """Drop the output: nothing is left under the final name or the temp name."""
        if not self._closed:
            self._discard()

    def _discard(self) -> None:
        self._closed = True
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            log.debug("%s: closing an aborted output: %s", self._tmp, exc)
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError as exc:  # e.g. a read-only folder, where nothing was created
            log.debug("%s: removing an aborted output: %s", self._tmp, exc)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
