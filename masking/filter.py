"""The static masking filter: video, image or image folder in, the same kind out, zones masked.

Video frames are masked in YUV 4:2:0 when the source is 4:2:0 with an even size (no colour
conversion at all), otherwise in BGR. Decoding and masking run in a worker thread that feeds the
encoder through a small bounded queue; PyAV releases the GIL while decoding and encoding, so the two
sides overlap. Any failure aborts the output: nothing is left under the output name.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from masking.config.zones import Camera, MaskStyle
from masking.errors import InputError, MaskingError
from masking.masks.apply import ZoneMasker
from masking.video.images import is_image_path, list_images, read_image, write_image
from masking.video.reader import VideoFrame, VideoReader
from masking.video.writer import VideoWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
_QUEUE_FRAMES = 8  # decoded frames buffered ahead of the encoder


@dataclass(frozen=True)
class FilterOptions:
    """How the filter masks and encodes.

    Attributes:
        style_override: replaces every zone's style when given (the CLI's --style).
        crf: x264 quality (lower = better, larger files).
        preset: x264 speed preset.
        progress: draw a progress bar on stderr.
    """

    style_override: MaskStyle | None = None
    crf: int = 20
    preset: str = "veryfast"
    progress: bool = False


@dataclass
class FilterStats:
    """What a filter run did."""

    kind: str  # "video" | "image" | "folder"
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0


def input_kind(source: str | Path) -> str:
    """"video", "image" or "folder" for an input path or URL."""
    if isinstance(source, str) and "://" in source:
        return "video"
    p = Path(source)
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    return "image" if is_image_path(p) else "video"


def filter_path(
    source: str | Path, output: str | Path, camera: Camera, options: FilterOptions | None = None
) -> FilterStats:
    """Mask `source` (video, image or folder) into `output` of the same kind."""
    options = options or FilterOptions()
    kind = input_kind(source)
    out = Path(output)
    if kind == "video" and is_image_path(out):
        raise InputError(f"{out}: a video input needs a video output (e.g. .mp4), not an image")
    if kind == "image" and not is_image_path(out):
        raise InputError(f"{out}: an image input needs an image output (.jpg, .png, ...)")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise InputError(f"{out}: a folder input needs a folder output")
    if kind == "video":
        return filter_video(source, out, camera, options)
    return filter_images(Path(source), out, camera, options)


def filter_images(
    source: Path, output: Path, camera: Camera, options: FilterOptions | None = None
) -> FilterStats:
    """Mask one image into `output`, or every image of a folder into the folder `output` (same names)."""
    options = options or FilterOptions()
    start = time.perf_counter()
    masker = ZoneMasker(camera, options.style_override)
    if source.is_dir():
        items = list_images(source)
        if not items:
            raise InputError(f"{source}: folder holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
        pairs = [(p, output / p.name) for p in items]
        stats = FilterStats("folder")
    else:
        pairs = [(source, output)]
        stats = FilterStats("image")
    for src, dst in _progress(pairs, options.progress, len(pairs), "images"):
        image = read_image(src)
        stats.frames_in += 1
        write_image(dst, masker.apply(image))
        stats.frames_out += 1
    stats.seconds = time.perf_counter() - start
    return stats


def filter_video(
    source: str | Path, output: Path, camera: Camera, options: FilterOptions | None = None
) -> FilterStats:
    """Mask every frame of a video; one output frame per input frame, source PTS and rate kept."""
    options = options or FilterOptions()
    start = time.perf_counter()
    masker = ZoneMasker(camera, options.style_override)
    with VideoReader(source) as reader:
        info = reader.info
        if reader.other_streams:
            log.info("%s: %d non-video stream(s) (audio, subtitles) are not copied", source, reader.other_streams)
        planar = info.pix_fmt == "yuv420p" and info.width % 2 == 0 and info.height % 2 == 0
        fmt = "yuv420p" if planar else "bgr24"
        stats = FilterStats("video")
        with VideoWriter(output, info, crf=options.crf, preset=options.preset, input_format=fmt) as writer:
            frames = _masked_frames(reader, masker, fmt)
            try:
                for vf in _progress(frames, options.progress, info.frames, "frames"):
                    stats.frames_in += 1
                    writer.write(vf.image, vf.pts)
            finally:
                frames.close()  # stops and joins the decode thread before the reader closes
            writer.close()
            stats.frames_out = writer.frames_written
    if stats.frames_out != stats.frames_in:
        raise MaskingError(f"{output}: wrote {stats.frames_out} frames for {stats.frames_in} read")
    stats.seconds = time.perf_counter() - start
    return stats


def _masked_frames(reader: VideoReader, masker: ZoneMasker, fmt: str) -> Generator[VideoFrame, None, None]:
    """Decode and mask in a worker thread; yield masked frames in order (errors re-raised here)."""
    q: queue.Queue[VideoFrame | Exception | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
    stop = threading.Event()

    def put(item: VideoFrame | Exception | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for vf in reader.frames(fmt):
                if fmt == "yuv420p":
                    masker.apply_yuv420p(vf.image)
                else:
                    masker.apply(vf.image)
                if not put(vf):
                    return
            put(None)
        except Exception as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=work, name="masking-decode", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                if worker.is_alive():
                    continue
                raise MaskingError(f"{reader.source}: the decode thread stopped without a result") from None
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _progress(items: Iterable[T], enabled: bool, total: int | None, unit: str) -> Iterable[T]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, leave=False)
