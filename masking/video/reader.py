"""Decode video files and streams with PyAV, keeping each frame's PTS and the stream's timing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np
import numpy.typing as npt

from masking.errors import InputError
from masking.media import is_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamInfo:
    """What a writer needs to reproduce a video stream's geometry and timing.

    Attributes:
        width, height: frame size in pixels.
        fps: average frame rate (frames per second).
        time_base: unit of the PTS values, in seconds.
        frames: frame count the container declares, or None when it does not say (streams).
        codec: decoder name, e.g. "h264".
        pix_fmt: the decoded pixel format, e.g. "yuv420p".
        duration_s: length in seconds the container declares (frames / fps, else the stream's or
            the container's duration), or None when it does not say (live streams).
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int | None
    codec: str
    pix_fmt: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: pixels plus its presentation timestamp.

    Attributes:
        image: BGR uint8 (H, W, 3), or (H*3/2, W) planar data when read as `yuv420p`.
        pts: presentation timestamp in `time_base` units (None if the stream has none).
        time_base: unit of `pts` in seconds.
        index: 0-based position of the frame in decode output order.
    """

    image: npt.NDArray[np.uint8]
    pts: int | None
    time_base: Fraction | None
    index: int


class VideoReader:
    """Read the first video stream of a file or URL (rtsp://, http://, ...) frame by frame.

    Use as a context manager; iterate for BGR frames, or call `frames("yuv420p")` for raw planes.
    Decoder threading is on. A file that cannot be opened or a frame that cannot be decoded raises
    `InputError` naming the source and the frame index.

    Args:
        source: path or URL.
        options: FFmpeg demuxer/protocol options, e.g. {"rtsp_transport": "tcp"}.
    """

    def __init__(self, source: str | Path, options: dict[str, str] | None = None) -> None:
        self.source = str(source)
        if not is_url(source) and not Path(source).is_file():
            raise InputError(f"{self.source}: no such video file")
        try:
            self._container = av.open(self.source, mode="r", options=options or {})
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"{self.source}: cannot open video: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{self.source}: holds no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.base_rate or self._stream.guessed_rate
        if not rate or not ctx.width or not ctx.height:
            self._container.close()
            raise InputError(f"{self.source}: video stream has no frame size or frame rate")
        tb = self._stream.time_base or Fraction(1, 90000)
        frames = int(self._stream.frames) or None
        if frames:
            duration: float | None = frames / float(rate)
        elif self._stream.duration:
            duration = float(self._stream.duration * Fraction(tb))
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        else:
            duration = None
        self.info = StreamInfo(
            width=int(ctx.width),
            height=int(ctx.height),
            fps=Fraction(rate),
            time_base=Fraction(tb),
            frames=frames,
            codec=str(ctx.name),
            pix_fmt=str(ctx.pix_fmt) if ctx.pix_fmt else None,
            duration_s=duration,
        )
        self.other_streams = len(self._container.streams) - 1  # audio, subtitles, data: not read

    @property
    def colour(self) -> tuple[int, int] | None:
        """The stream's FFmpeg (colorspace, color_range) codes, which its bgr24 conversion follows
        (BT.709 vs BT.601, limited vs full range); None when the decoder does not report them."""
        ctx = self._stream.codec_context
        try:
            return int(ctx.colorspace), int(ctx.color_range)
        except (AttributeError, TypeError, ValueError):
            return None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the container (idempotent)."""
        self._container.close()

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames("bgr24")

    def frames(self, pixel_format: str = "bgr24") -> Iterator[VideoFrame]:
        """Decoded frames as `pixel_format` ndarrays ("bgr24" or "yuv420p"), in presentation order.

        Raises `InputError` when a packet cannot be demuxed or decoded, and when a file holds fewer
        packets than its container declares (a truncated file otherwise just ends early).
        """
        index = 0
        packets = 0
        demuxer = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demuxer)
                if packet.size:
                    packets += 1
                decoded = [(f, np.asarray(f.to_ndarray(format=pixel_format), np.uint8)) for f in packet.decode()]
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise InputError(
                    f"{self.source}: cannot decode frame {index} (truncated or corrupt input?): {exc}"
                ) from exc
            for frame, image in decoded:
                tb = Fraction(frame.time_base) if frame.time_base is not None else self.info.time_base
                yield VideoFrame(image=image, pts=frame.pts, time_base=tb, index=index)
                index += 1
        declared = self.info.frames
        if declared is not None and packets < declared:
            raise InputError(
                f"{self.source}: truncated: the container declares {declared} frames but holds "
                f"{packets}; frame {index} onwards is missing"
            )
        if declared is not None and index < declared:
            log.warning("%s: decoded %d of the %d frames the container declares", self.source, index, declared)
