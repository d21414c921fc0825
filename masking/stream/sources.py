"""Frame sources for the masking pipeline: files, live streams, watched folders, raw pipes, images.

Every source yields `(image, pts, time_base)` in presentation order and says whether it is live
(`live=True`: the pipeline drops the oldest frames under overload and counts them) or not (files,
folders, pipes, images: the pipeline applies back-pressure and never drops). Decoding is
`masking.video.reader.VideoReader` (PyAV, which releases the GIL while decoding; frames upright).
Timestamps leave every video source strictly increasing (`_PtsFixer`): a stream or file whose PTS
restart (a reconnect, concatenated recordings) continues one frame after the last timestamp.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from masking.errors import ConfigError, InputError, MaskingError
from masking.stream.frames import Image
from masking.video.images import read_image
from masking.video.layout import PixelLayout
from masking.video.reader import StreamInfo, VideoReader

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "srt://")
# Raw input frames larger than this are refused (a frame is allocated whole, and about 20 are queued).
RAW_MAX_SIDE = 16384
RAW_MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class SourceInfo:
    """What sinks need to know about a source before the first frame.

    `colour` is what FFmpeg's bgr24 conversion of the decoded frames goes by (BT.709 vs BT.601
    matrix, range); the detector's input made from yuv420p planes uses it to match that conversion.
    `layout` is the array layout frames travel in: "bgr24" (H, W, 3), or "yuv420p" (H*3/2, W)
    planes, which the pipeline picks whenever source and sink both take them (even size): masks are
    drawn on the planes and the encoder takes them as they are; detectors get their small BGR input
    built from the planes by FFmpeg's own conversion (`masking.detect.dynamic.yuv420p_to_bgr`).
    `stills`: the frames are unrelated still images (an image, a folder of images): each may have
    its own size (width/height are the first one's) and is masked with its own detections only.
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    pix_fmt: str | None = None
    layout: PixelLayout = PixelLayout.bgr24
    colour: tuple[int, int] | None = None  # the decoder's FFmpeg (colorspace, color_range) codes
    stills: bool = False

    @property
    def planar_ok(self) -> bool:
        """Whether frames can travel as yuv420p planes (even size, one size for all frames)."""
        return not self.stills and PixelLayout.planar_ok(self.width, self.height)


Item = tuple[object, int, Fraction]  # (image, pts, time_base); image may be corrupt


class Source(Protocol):
    """A camera's frames."""

    name: str
    live: bool
    layouts: tuple[PixelLayout, ...]  # array layouts `frames` can deliver; bgr24 always first

    def open(self, stop: threading.Event) -> SourceInfo: ...
    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]: ...
    def close(self) -> None: ...


def _info_from_reader(reader: VideoReader) -> SourceInfo:
    info: StreamInfo = reader.info
    fps = Fraction(info.fps) if info.fps else Fraction(25)
    return SourceInfo(int(info.width), int(info.height), fps, Fraction(info.time_base), info.pix_fmt,
                      colour=reader.colour)


class _PtsFixer:
    """Makes pts strictly increasing in one time base: fills missing pts, shifts restarts.

    A live stream that reconnects, a folder of segments, or a file of concatenated recordings
    restarts its pts; the offset keeps the output increasing at the stream's frame rate and is
    logged. Within one continuous stream pts pass through unchanged (B-frames, variable rate).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.time_base: Fraction | None = None
        self.step = 1
        self.last: int | None = None
        self.offset = 0
        self._restart = False

    def set_rate(self, time_base: Fraction, fps: Fraction) -> None:
        if self.time_base is None:
            self.time_base = time_base
            self.step = max(1, round(1 / (fps * time_base))) if fps else 1

    def segment_start(self) -> None:
        """The next pts may restart; shift it to follow on from the last one if it does."""
        self._restart = True

    def fix(self, pts: int | None, time_base: Fraction) -> int:
        assert self.time_base is not None
        if pts is not None and time_base != self.time_base:
            pts = round(pts * time_base / self.time_base)
        if self._restart and pts is not None:  # the first frame with a pts after the restart sets the shift
            self._restart = False
            if self.last is not None and pts + self.offset <= self.last:
                self.offset = self.last + self.step - pts
                log.info("%s: timestamps restart; later pts are shifted by %d to stay increasing", self.name, self.offset)
        if pts is None:
            out = (self.last + self.step) if self.last is not None else 0
        else:
            out = pts + self.offset
            if self.last is not None and out < self.last - self.step:  # jumped back: a restart within the input
                self.offset = self.last + self.step - pts
                log.warning("%s: timestamps jump back by %.3f s; later pts are shifted by %d (one frame after the "
                            "last) to stay increasing", self.name, float((self.last - out) * self.time_base), self.offset)
                out = pts + self.offset
            elif self.last is not None and out <= self.last:
                out = self.last + 1
        self.last = out
        return out


def check_input_file(path: Path, what: str = "video file") -> None:
    """`InputError` unless `path` is a regular file (or a pipe): names missing files and devices."""
    if path.is_file() or path.is_fifo():
        return
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    kind = "a folder" if path.is_dir() else "a device or other special file"
    raise InputError(f"{path}: not a {what} but {kind}; expected a video file, an image, a folder of images or a "
                     "stream URL (raw frames from a pipe need --input-format rawvideo)")


class FileSource:
    """A video file (anything PyAV opens): back-pressure, never drops.

    With `realtime`, frames are released at the pace of their timestamps (a file replayed into a
    recorder as if it were a camera); otherwise as fast as the pipeline takes them.
    A frame whose size differs from the first one's (a resolution change inside the file) ends the
    run with `InputError`: the output has one size, and masking it as corrupt would black it out.
    """

    live = False
    layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24, PixelLayout.yuv420p)

    def __init__(self, path: str | Path, name: str | None = None, realtime: bool = False) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.realtime = realtime
        self._reader: VideoReader | None = None
        self._info: SourceInfo | None = None
        self._fix = _PtsFixer(self.name)

    def open(self, stop: threading.Event) -> SourceInfo:
        check_input_file(self.path)
        self._reader = VideoReader(str(self.path))
        self._info = _info_from_reader(self._reader)
        self._fix.set_rate(self._info.time_base, self._info.fps)
        if self._reader.other_streams:
            log.info("%s: %d non-video stream(s) (audio, subtitles) are not copied", self.path, self._reader.other_streams)
        return self._info

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        assert self._reader is not None and self._info is not None, "open() first"
        info = self._info
        shape = PixelLayout(layout).shape(info.width, info.height)
        origin: float | None = None  # wall clock at source time 0 (realtime pacing)
        for vf in self._reader.frames(layout):
            if stop.is_set():
                return
            if vf.image.shape != shape:
                raise InputError(
                    f"{self.path}: frame {vf.index} is {vf.image.shape[1]}x"
                    f"{vf.image.shape[0] * 2 // 3 if layout == PixelLayout.yuv420p else vf.image.shape[0]}, but the "
                    f"video began at {info.width}x{info.height}; a size change inside one file is not supported "
                    "(split the file where the size changes)"
                )
            tb = vf.time_base or info.time_base
            pts = self._fix.fix(vf.pts, tb)
            out_tb = self._fix.time_base or tb
            if self.realtime:
                t = float(pts * out_tb)
                if origin is None:
                    origin = time.monotonic() - t
                if stop.wait(max(0.0, origin + t - time.monotonic())):
                    return
            yield vf.image, pts, out_tb

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass(frozen=True)
class ReconnectPolicy:
    """Back-off between reconnection attempts of a live source."""

    initial_s: float = 0.5
    max_s: float = 10.0
    give_up_after_s: float | None = None  # None: keep trying until stopped


class StreamSource:
    """A live stream (RTSP/RTSPS over TCP by default, HTTP, ...): reconnects with back-off.

    Each loss and each reconnection is logged; the outage is logged as a gap (wall-clock seconds)
    and counted by the pipeline, and pts after a reconnect are shifted to keep increasing.
    """

    live = True
    layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24, PixelLayout.yuv420p)

    def __init__(
        self,
        url: str,
        name: str | None = None,
        transport: str = "tcp",
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        read_timeout_s: float = 5.0,
        on_gap: Callable[[float], None] | None = None,
    ) -> None:
        self.url = url
        self.name = name or url
        self.transport = transport
        self.reconnect = reconnect
        self.read_timeout_s = read_timeout_s
        self.on_gap = on_gap
        self.reconnects = 0
        self._reader: VideoReader | None = None
        self._fix = _PtsFixer(self.name)
        self._info: SourceInfo | None = None

    def _options(self) -> dict[str, str]:
        opts = {"timeout": str(int(self.read_timeout_s * 1e6))}
        if self.url.startswith(("rtsp://", "rtsps://")):
            opts["rtsp_transport"] = self.transport
        return opts

    def _connect(self) -> SourceInfo:
        reader = VideoReader(self.url, options=self._options())
        self._reader = reader
        info = _info_from_reader(reader)
        self._fix.set_rate(info.time_base, info.fps)
        return info

    def _drop_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except MaskingError as exc:
                log.debug("%s: closing the lost stream: %s", self.name, exc)
            self._reader = None

    def open(self, stop: threading.Event) -> SourceInfo:
        """Connect, retrying with back-off (a camera may be offline when the pipeline starts)."""
        delay, start, attempt = self.reconnect.initial_s, time.monotonic(), 0
        while True:
            attempt += 1
            try:
                self._info = self._connect()
                break
            except MaskingError as exc:
                waited = time.monotonic() - start
                if self.reconnect.give_up_after_s is not None and waited >= self.reconnect.give_up_after_s:
                    raise InputError(f"{self.name}: cannot open stream after {attempt} attempt(s): {exc}") from exc
                log.warning("%s: cannot connect (attempt %d): %s; retrying in %.1f s", self.name, attempt, exc, delay)
                if stop.wait(delay):
                    raise InputError(f"{self.name}: stopped before the stream could be opened") from exc
                delay = min(delay * 2, self.reconnect.max_s)
        log.info("%s: connected (%dx%d)", self.name, self._info.width, self._info.height)
        return self._info

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        assert self._info is not None, "open() first"
        while not stop.is_set():
            reason = "end of stream"
            try:
                assert self._reader is not None
                for vf in self._reader.frames(layout):
                    if stop.is_set():
                        return
                    tb = vf.time_base or self._info.time_base
                    yield vf.image, self._fix.fix(vf.pts, tb), self._fix.time_base or tb
            except MaskingError as exc:
                reason = str(exc)
            self._drop_reader()
            if stop.is_set():
                return
            lost_at = time.monotonic()
            log.warning("%s: stream lost (%s); reconnecting", self.name, reason)
            if not self._reconnect(stop, lost_at):
                return

    def _reconnect(self, stop: threading.Event, lost_at: float) -> bool:
        delay = self.reconnect.initial_s
        attempt = 0
        while not stop.is_set():
            waited = time.monotonic() - lost_at
            if self.reconnect.give_up_after_s is not None and waited >= self.reconnect.give_up_after_s:
                log.error("%s: giving up after %.1f s without a connection (%d attempts)", self.name, waited, attempt)
                self._gap(time.monotonic() - lost_at)
                return False
            if stop.wait(delay):
                break
            attempt += 1
            try:
                info = self._connect()
            except MaskingError as exc:
                log.warning("%s: reconnect attempt %d failed: %s; next in %.1f s", self.name, attempt, exc, min(delay * 2, self.reconnect.max_s))
                delay = min(delay * 2, self.reconnect.max_s)
                continue
            gap = time.monotonic() - lost_at
            self.reconnects += 1
            old = self._info
            assert old is not None
            if (info.width, info.height) != (old.width, old.height):
                log.error("%s: reconnected at %dx%d, was %dx%d: frames of the new size are masked as corrupt",
                          self.name, info.width, info.height, old.width, old.height)
            log.warning("%s: reconnected after %d attempt(s); gap of %.2f s with no frames (about %d frames at %.1f fps)",
                        self.name, attempt, gap, round(gap * float(old.fps)), float(old.fps))
            self._gap(gap)
            self._fix.segment_start()
            return True
        self._gap(time.monotonic() - lost_at)
        return False

    def _gap(self, seconds: float) -> None:
        if self.on_gap is not None:
            self.on_gap(seconds)

    def close(self) -> None:
        self._drop_reader()


class FolderSource:
    """A folder watched for new video segments, processed in name order (back-pressure).

    A file is taken once its size has not changed for one poll interval; names starting with `.`
    or ending in `.tmp`/`.part` are ignored (recorders write those before renaming). Stops after
    `idle_timeout_s` without a new segment (None: watch until stopped).
    """

    live = False
    layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24, PixelLayout.yuv420p)

    def __init__(self, folder: str | Path, pattern: str = "*.mp4", poll_s: float = 0.5,
                 idle_timeout_s: float | None = None, name: str | None = None) -> None:
        self.folder = Path(folder)
        self.pattern = pattern
        self.poll_s = poll_s
        self.idle_timeout_s = idle_timeout_s
        self.name = name or str(self.folder)
        self._done: set[Path] = set()
        self._fix = _PtsFixer(self.name)
        self._first: Path | None = None
        self._info: SourceInfo | None = None
        self.segments_failed = 0

    def _ready(self, stop: threading.Event) -> list[Path]:
        cands = sorted(p for p in self.folder.glob(self.pattern)
                       if p.is_file() and p not in self._done and not p.name.startswith(".")
                       and not p.name.endswith((".tmp", ".part")))
        if not cands:
            return []
        sizes = {p: p.stat().st_size for p in cands}
        if stop.wait(self.poll_s):
            return []
        return [p for p in cands if p.exists() and p.stat().st_size == sizes[p] and sizes[p] > 0]

    def open(self, stop: threading.Event) -> SourceInfo:
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: not a folder")
        start = time.monotonic()
        while True:
            ready = self._ready(stop)
            if ready:
                break
            if self.idle_timeout_s is not None and time.monotonic() - start > self.idle_timeout_s:
                raise InputError(f"{self.folder}: no segment matching {self.pattern!r} appeared")
            if stop.wait(self.poll_s):
                raise InputError(f"{self.folder}: stopped before any segment appeared")
        self._first = ready[0]
        with VideoReader(str(self._first)) as r:
            info = _info_from_reader(r)
        self._fix.set_rate(info.time_base, info.fps)
        self._info = info
        return info

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        idle_since = time.monotonic()
        while not stop.is_set():
            ready = self._ready(stop)
            if not ready:
                if self.idle_timeout_s is not None and time.monotonic() - idle_since > self.idle_timeout_s:
                    log.info("%s: no new segment for %.1f s; done", self.name, self.idle_timeout_s)
                    return
                stop.wait(self.poll_s)
                continue
            for path in ready:
                self._done.add(path)
                log.info("%s: segment %s", self.name, path.name)
                self._fix.segment_start()
                n = 0
                try:
                    with VideoReader(str(path)) as reader:
                        for vf in reader.frames(layout):
                            if stop.is_set():
                                return
                            tb = vf.time_base or reader.info.time_base
                            yield vf.image, self._fix.fix(vf.pts, tb), self._fix.time_base or tb
                            n += 1
                except InputError as exc:  # one broken segment must not stop the camera
                    self.segments_failed += 1
                    log.error("%s: segment %s is unreadable after %d frame(s), the rest of it is skipped: %s",
                              self.name, path.name, n, exc)
            idle_since = time.monotonic()

    def close(self) -> None:
        return None


class RawSource:
    """Raw bgr24 frames of a known size from a binary stream (stdin): pts = frame number / fps.

    An input that ends before its first frame is an error (nothing to mask is not success).
    """

    live = False
    layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24,)

    def __init__(self, stream: BinaryIO, width: int, height: int, fps: Fraction = Fraction(25), name: str = "stdin",
                 owns_stream: bool = False) -> None:
        if width < 1 or height < 1:
            raise ConfigError(f"{name}: raw frame size must be positive, got {width}x{height}")
        if max(width, height) > RAW_MAX_SIDE or width * height > RAW_MAX_PIXELS:
            raise ConfigError(f"{name}: raw frame size {width}x{height} is too large: at most {RAW_MAX_SIDE} pixels "
                              f"a side and {RAW_MAX_PIXELS:,} pixels a frame")
        self.stream = stream
        self.width = width
        self.height = height
        self.fps = Fraction(fps)
        self.name = name
        self.owns_stream = owns_stream

    def open(self, stop: threading.Event) -> SourceInfo:
        return SourceInfo(self.width, self.height, self.fps, 1 / self.fps)

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        size = self.width * self.height * 3
        tb = 1 / self.fps
        n = 0
        while not stop.is_set():
            buf = _read_exact(self.stream, size)
            if not buf and n == 0:
                raise InputError(f"{self.name}: the input is empty: expected raw bgr24 frames of "
                                 f"{self.width}x{self.height} ({size} bytes each)")
            if not buf:
                return
            if len(buf) < size:
                log.warning("%s: input ended inside frame %d (%d of %d bytes); that partial frame is ignored",
                            self.name, n, len(buf), size)
                return
            yield np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3).copy(), n, tb
            n += 1

    def close(self) -> None:
        if self.owns_stream:
            self.stream.close()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    got = 0
    while got < size:
        b = stream.read(size - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


class FaultySource:
    """Test seam: wraps a source and replaces chosen frames with corrupt ones.

    `corrupt_on(i)` picks frames by index; they become a wrong-shape or wrong-dtype array (as a
    broken decoder might deliver). The pipeline must count them and mask them by policy.
    """

    def __init__(self, inner: Source, corrupt_on: Callable[[int], bool]) -> None:
        self.inner = inner
        self.corrupt_on = corrupt_on
        self.name = inner.name
        self.live = inner.live
        self.layouts: tuple[PixelLayout, ...] = getattr(inner, "layouts", (PixelLayout.bgr24,))

    def open(self, stop: threading.Event) -> SourceInfo:
        return self.inner.open(stop)

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        for i, (img, pts, tb) in enumerate(self.inner.frames(stop, layout)):
            if self.corrupt_on(i):
                arr = np.asarray(img)
                img = arr[: arr.shape[0] // 2] if i % 2 else arr.astype(np.float32)
            yield img, pts, tb

    def close(self) -> None:
        self.inner.close()


class ImageSource:
    """Still images (one, or a folder's, in name order): each is one frame, at its own size.

    Frames carry pts = their position in `paths` (time base 1 s); `SourceInfo.stills` tells the
    pipeline to mask each with its own detections only. One unreadable image ends the run with
    `InputError`; in a folder, an unreadable image is logged and recorded in `failures` (path,
    reason) and the others are read on (`masking filter` then exits 3).
    """

    live = False
    layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24,)

    def __init__(self, paths: list[Path], name: str | None = None) -> None:
        if not paths:
            raise InputError(f"{name or 'images'}: no images to read")
        self.paths = paths
        self.name = name or str(paths[0])
        self.failures: list[tuple[Path, str]] = []
        self._first: tuple[int, Image] | None = None

    def _read(self, i: int) -> Image | None:
        try:
            return read_image(self.paths[i])
        except InputError as exc:
            if len(self.paths) == 1:
                raise
            self.failures.append((self.paths[i], str(exc)))
            log.error("%s: skipped: %s", self.paths[i], exc)
            return None

    def open(self, stop: threading.Event) -> SourceInfo:
        for i in range(len(self.paths)):
            image = self._read(i)
            if image is not None:
                self._first = (i, image)
                h, w = image.shape[:2]
                return SourceInfo(w, h, Fraction(1), Fraction(1), stills=True)
        raise InputError(f"{self.name}: none of the {len(self.paths)} images could be read")

    def frames(self, stop: threading.Event, layout: PixelLayout = PixelLayout.bgr24) -> Iterator[Item]:
        start = self._first[0] if self._first is not None else 0
        for i in range(start, len(self.paths)):
            if stop.is_set():
                return
            if self._first is not None and i == self._first[0]:
                image: Image | None = self._first[1]
                self._first = None
            else:
                image = self._read(i)
            if image is not None:
                yield image, i, Fraction(1)

    def close(self) -> None:
        self._first = None


def frame_shape(info: SourceInfo) -> tuple[int, ...]:
    """The array shape of one frame in the info's layout."""
    return PixelLayout(info.layout).shape(info.width, info.height)


def validate(image: object, info: SourceInfo) -> tuple[Image | None, str | None]:
    """The image if it is a uint8 frame of the stream's size and layout, else (None, why); stills
    may have any size (bgr24)."""
    if not isinstance(image, np.ndarray):
        return None, f"not an array ({type(image).__name__})"
    if info.stills:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            return None, f"{image.dtype} {image.shape}, expected a uint8 (H, W, 3) image"
        return image, None
    shape = frame_shape(info)
    if image.dtype != np.uint8 or image.shape != shape:
        return None, f"{image.dtype} {image.shape}, expected uint8 {shape}"
    return image, None
