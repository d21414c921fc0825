"""Decode video files and streams with PyAV, keeping each frame's PTS and the stream's timing.

Frames come out upright: a rotation display matrix (phones, body-worn and "corridor mode" cameras
store the picture sideways and say so in the container) is applied when decoding, for every
multiple of 90 degrees, mirrored or not, so everything downstream (masks, detectors, audits, output
files) sees the picture as it is displayed. `StreamInfo.width/height` are the displayed size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt

from masking.errors import InputError
from masking.media import is_url
from masking.video.layout import PixelLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamInfo:
    """What a writer needs to reproduce a video stream's geometry and timing.

    Attributes:
        width, height: frame size in pixels, as displayed (after the rotation, if any).
        fps: average frame rate (frames per second).
        time_base: unit of the PTS values, in seconds.
        frames: frame count the container declares, or None when it does not say (streams).
        codec: decoder name, e.g. "h264".
        pix_fmt: the decoded pixel format, e.g. "yuv420p".
        duration_s: length in seconds the container declares (frames / fps, else the stream's or
            the container's duration), or None when it does not say (live streams).
        orientation: how the stored picture is turned upright (identity when it is stored upright).
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int | None
    codec: str
    pix_fmt: str | None = None
    duration_s: float | None = None
    orientation: Orientation | None = None


@dataclass(frozen=True)
class Orientation:
    """A display matrix restricted to what cameras write: quarter turns, optionally mirrored.

    The displayed picture is the stored one transposed (`swap`, for 90 and 270 degrees), then
    flipped upside down (`flip_rows`) and/or left to right (`flip_cols`).
    """

    swap: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def identity(self) -> bool:
        return not (self.swap or self.flip_rows or self.flip_cols)

    def __str__(self) -> str:
        if self.identity:
            return "upright"
        parts = ["transposed"] if self.swap else []
        parts += ["flipped vertically"] * self.flip_rows + ["flipped horizontally"] * self.flip_cols
        return ", ".join(parts)

    @classmethod
    def from_matrix(cls, m: npt.NDArray[np.int32], source: str) -> Orientation:
        """From FFmpeg's 3x3 display matrix (9 int32, 16.16 fixed point, row vector times matrix).

        A displayed point is (x', y') = (a x + c y, b x + d y) + shift, with a, b, c, d the matrix's
        [0], [1], [3], [4]. Only quarter turns (each of a, b, c, d in -1, 0, 1, one non-zero per row)
        can be applied without resampling; anything else is refused rather than guessed.
        """
        a, b, c, d = (round(float(m[i]) / 65536.0, 3) for i in (0, 1, 3, 4))
        if a == 0 and d == 0 and abs(b) == 1 and abs(c) == 1:
            return cls(swap=True, flip_rows=b < 0, flip_cols=c < 0)
        if b == 0 and c == 0 and abs(a) == 1 and abs(d) == 1:
            return cls(swap=False, flip_rows=d < 0, flip_cols=a < 0)
        raise InputError(
            f"{source}: the display matrix {[int(v) for v in m]} is not a quarter turn (0/90/180/270 degrees, "
            "optionally mirrored); such a rotation is not supported"
        )

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The displayed (width, height) of a stored (width, height) picture."""
        return (height, width) if self.swap else (width, height)

    def _plane(self, p: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        if self.swap:
            p = np.asarray(cv2.transpose(p), np.uint8)
        if self.flip_rows or self.flip_cols:
            p = np.asarray(cv2.flip(p, -1 if self.flip_rows and self.flip_cols else (0 if self.flip_rows else 1)), np.uint8)
        return p

    def apply(self, image: npt.NDArray[np.uint8], layout: PixelLayout, width: int, height: int) -> npt.NDArray[np.uint8]:
        """The stored (`width` x `height`) frame in `layout`, turned upright (a new array)."""
        if self.identity:
            return image
        if layout is PixelLayout.bgr24:
            return np.ascontiguousarray(self._plane(image))
        flat = image.reshape(-1)
        n, q = width * height, (width // 2) * (height // 2)
        y = flat[:n].reshape(height, width)
        u = flat[n : n + q].reshape(height // 2, width // 2)
        v = flat[n + q : n + 2 * q].reshape(height // 2, width // 2)
        out = np.concatenate([self._plane(y).reshape(-1), self._plane(u).reshape(-1), self._plane(v).reshape(-1)])
        w2, h2 = self.size(width, height)
        return out.reshape(PixelLayout.yuv420p.shape(w2, h2))


UPRIGHT = Orientation()


def frame_orientation(frame: av.VideoFrame, source: str) -> Orientation:
    """The orientation a decoded frame's display-matrix side data asks for (upright when none)."""
    side_data: Any = frame.side_data
    for sd in side_data:
        if "DISPLAYMATRIX" in str(sd.type):
            raw = bytes(sd)
            if len(raw) >= 36:
                return Orientation.from_matrix(np.frombuffer(raw[:36], np.int32), source)
    return UPRIGHT


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: pixels plus its presentation timestamp.

    Attributes:
        image: BGR uint8 (H, W, 3), or (H*3/2, W) planar data when read as `yuv420p`; upright.
        pts: presentation timestamp in `time_base` units (None if the stream has none).
        time_base: unit of `pts` in seconds.
        index: 0-based position of the frame in decode output order.
    """

    image: npt.NDArray[np.uint8]
    pts: int | None
    time_base: Fraction | None
    index: int


_DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class VideoReader:
    """Read the first video stream of a file or URL (rtsp://, http://, ...) frame by frame.

    Use as a context manager; iterate for BGR frames, or call `frames("yuv420p")` for raw planes.
    Decoder threading is on. A file that cannot be opened or a frame that cannot be decoded raises
    `InputError` naming the source and the frame index. Opening decodes the first frame (its side
    data carries the display matrix, which sets the displayed size); it is delivered first.

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
        except _DECODE_ERRORS as exc:
            raise InputError(f"{self.source}: cannot open video: {exc}") from exc
        try:
            self._setup()
        except BaseException:
            self._container.close()
            raise

    def _setup(self) -> None:
        if not self._container.streams.video:
            raise InputError(f"{self.source}: holds no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.base_rate or self._stream.guessed_rate
        if not rate or not ctx.width or not ctx.height:
            raise InputError(f"{self.source}: video stream has no frame size or frame rate")
        self._demuxer = self._container.demux(self._stream)
        self.frames_read = 0
        self._packets = 0
        self._pending: list[av.VideoFrame] = []
        self._ended = False
        self._peek()
        first = self._pending[0] if self._pending else None
        self.orientation = frame_orientation(first, self.source) if first is not None else UPRIGHT
        stored = (int(first.width), int(first.height)) if first is not None else (int(ctx.width), int(ctx.height))
        self._stored = stored
        width, height = self.orientation.size(*stored)
        if not self.orientation.identity:
            log.info("%s: stored %dx%d %s by its display matrix; decoded upright as %dx%d",
                     self.source, stored[0], stored[1], self.orientation, width, height)
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
            width=width,
            height=height,
            fps=Fraction(rate),
            time_base=Fraction(tb),
            frames=frames,
            codec=str(ctx.name),
            pix_fmt=str(ctx.pix_fmt) if ctx.pix_fmt else None,
            duration_s=duration,
            orientation=self.orientation,
        )
        self.other_streams = len(self._container.streams) - 1  # audio, subtitles, data: not read

    def _peek(self) -> None:
        """Decode packets until one frame is pending or the stream ends."""
        while not self._pending and not self._ended:
            try:
                packet = next(self._demuxer)
                if packet.size:
                    self._packets += 1
                self._pending.extend(packet.decode())
            except StopIteration:
                self._ended = True
            except _DECODE_ERRORS as exc:
                raise InputError(
                    f"{self.source}: cannot decode frame {self.frames_read} (truncated or corrupt input?): {exc}"
                ) from exc

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
        return self.frames(PixelLayout.bgr24)

    def frames(self, pixel_format: str = PixelLayout.bgr24) -> Iterator[VideoFrame]:
        """Decoded frames as `pixel_format` ndarrays ("bgr24" or "yuv420p"), upright, in
        presentation order. A reader is read once: a second call continues where the first stopped.

        Raises `InputError` when a packet cannot be demuxed or decoded, and when a file holds fewer
        packets than its container declares (a truncated file otherwise just ends early).
        """
        layout = PixelLayout(pixel_format)
        turn = self.orientation
        sw, sh = self._stored
        while True:
            self._peek()
            if not self._pending:
                break
            frame = self._pending.pop(0)
            index = self.frames_read
            try:
                image = np.asarray(frame.to_ndarray(format=layout.value), np.uint8)
            except _DECODE_ERRORS as exc:
                raise InputError(f"{self.source}: cannot convert frame {index}: {exc}") from exc
            if not turn.identity and (frame.width, frame.height) == (sw, sh):
                image = turn.apply(image, layout, sw, sh)
            tb = Fraction(frame.time_base) if frame.time_base is not None else self.info.time_base
            self.frames_read = index + 1
            yield VideoFrame(image=image, pts=frame.pts, time_base=tb, index=index)
        declared = self.info.frames
        if declared is not None and self._packets < declared:
            raise InputError(
                f"{self.source}: truncated: the container declares {declared} frames but holds "
                f"{self._packets}; frame {self.frames_read} onwards is missing"
            )
        if declared is not None and self.frames_read < declared:
            log.warning("%s: decoded %d of the %d frames the container declares", self.source, self.frames_read, declared)
