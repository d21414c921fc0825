"""Benchmark static masks and the video filter against their floors; prints a table.

    .venv/bin/python benchmarks/static_masks.py [--clip ../shared/eval/videos/office_v001.mp4] [--repeat 3] [--filter-only]

Floors (from the issues): fill within 1.5x of an in-place `cv2.bitwise_not` of the frame (the memory
floor); pixelate <= 2 ms and blur <= 4 ms per 1080p frame at ~20% coverage; `masking filter` within
1.25x of a plain PyAV decode + encode of the same clip with the same codec settings, and (issue 9,
one frame pipeline) within 1.10x of the previous static filter: its decode-thread + queue loop,
kept below as `previous_filter` (a copy of 5e77f25's `masking/filter.py` loop) as the baseline row.
The three runs alternate within each repeat; each number is the best of `--repeat` runs (the
machine may be shared).
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from masking.config.zones import Camera
from masking.masks.apply import ZoneMasker
from masking.masks.boxes import MaskBoxes
from masking.stream.build import mask_file
from masking.video.encoding import DEFAULT_PRESET, encoder_options
from masking.video.layout import PixelLayout
from masking.video.reader import VideoFrame, VideoReader
from masking.video.writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "eval" / "videos" / "office_v001.mp4"
# Four polygons covering about 20% of the frame.
POLYGONS = [
    [[0.05, 0.05], [0.25, 0.07], [0.24, 0.30], [0.07, 0.28]],
    [[0.62, 0.08], [0.90, 0.08], [0.86, 0.36]],
    [[0.10, 0.60], [0.28, 0.56], [0.30, 0.82], [0.15, 0.88], [0.06, 0.78]],
    [[0.60, 0.62], [0.86, 0.66], [0.82, 0.90], [0.57, 0.85]],
]
STYLES: dict[str, dict[str, object]] = {
    "fill": {"mode": "fill"},
    "pixelate": {"mode": "pixelate", "block": 16},
    "blur": {"mode": "blur", "strength": 31},
}
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def camera(style: dict[str, object]) -> Camera:
    zones = [{"id": f"z{i}", "kind": "privacy_mask", "polygon": p, "style": style} for i, p in enumerate(POLYGONS)]
    return Camera.model_validate({"camera_id": "bench", "zones": zones})


def best_ms(fn: Callable[[], object], n: int, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1000


def bench_masks(repeat: int) -> None:
    print("Static masks, ms per frame (batch: (8,H,W,3) in one call, per frame); coverage ~20%")
    print(f"{'size':<6} {'op':<22} {'frame':>8} {'batch/8':>8}  floor")
    rng = np.random.default_rng(0)
    for name, (w, h) in SIZES.items():
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        batch = rng.integers(0, 256, (8, h, w, 3), dtype=np.uint8)
        flat = batch.reshape(8 * h, w, 3)
        not1 = best_ms(lambda f=frame: cv2.bitwise_not(f, dst=f), 100, repeat)
        not8 = best_ms(lambda f=flat: cv2.bitwise_not(f, dst=f), 20, repeat) / 8
        print(f"{name:<6} {'bitwise_not (memory)':<22} {not1:8.3f} {not8:8.3f}")
        for style_name, style in STYLES.items():
            masker = ZoneMasker(camera(style))
            cov = masker.mask(w, h).mean()
            one = best_ms(lambda m=masker, f=frame: m.apply(f), 50, repeat)
            eight = best_ms(lambda m=masker, b=batch: m.apply(b), 10, repeat) / 8
            if style_name == "fill":
                floor = f"<= 1.5x memory: {'ok' if one <= 1.5 * not1 and eight <= 1.5 * not8 else 'MISSED'}"
            else:
                limit = {"pixelate": 2.0, "blur": 4.0}[style_name] * (w * h) / (1920 * 1080)
                floor = f"<= {limit:.2f} ms: {'ok' if max(one, eight) <= limit else 'MISSED'}"
            print(f"{name:<6} {style_name + f' ({cov:.0%})':<22} {one:8.3f} {eight:8.3f}  {floor}")
            yuv = rng.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)
            yuv_ms = best_ms(lambda m=masker, y=yuv: m.apply_yuv420p(y), 50, repeat)
            print(f"{name:<6} {style_name + ' yuv420p':<22} {yuv_ms:8.3f} {'':>8}  (used by the video filter)")


def bench_boxes(repeat: int) -> None:
    print("\nDynamic masks (apply_boxes), 1080p, 10 boxes of 60-160 px spread over the frame, half ellipses")
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    xy = rng.uniform(0, 1750, (10, 2))
    boxes = MaskBoxes(np.hstack([xy, xy + rng.uniform(60, 160, (10, 2))]).astype(np.float32), np.arange(10) % 2 == 0)
    for style_name, style in STYLES.items():
        masker = ZoneMasker(Camera.model_validate({"camera_id": "bench", "style": style}))
        ms = best_ms(lambda m=masker: m.apply_boxes(frame, boxes), 50, repeat)
        print(f"{'1080p':<6} {style_name:<22} {ms:8.3f}")


def plain_transcode(src: Path, dst: Path) -> int:
    """Decode and re-encode with the filter's codec settings, no masking: the filter's floor."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        s.thread_type = "AUTO"
        o = cast(VideoStream, out.add_stream("libx264", rate=s.average_rate))
        o.width, o.height, o.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        o.time_base = s.time_base
        o.codec_context.time_base = s.time_base
        o.codec_context.thread_count = 0
        o.options = dict[str, object](encoder_options("libx264", DEFAULT_PRESET, 20))
        n = 0
        for frame in inp.decode(s):
            for packet in o.encode(frame):
                out.mux(packet)
            n += 1
        for packet in o.encode():
            out.mux(packet)
    return n


def previous_filter(src: Path, dst: Path, cam: Camera) -> int:
    """The static video filter before the one frame pipeline (5e77f25's `masking/filter.py`): decode
    and mask yuv420p planes in a worker thread feeding the encoder through a queue of 8 frames."""
    masker = ZoneMasker(cam)
    q: queue.Queue[VideoFrame | None] = queue.Queue(maxsize=8)
    with VideoReader(src) as reader:
        def work() -> None:
            for vf in reader.frames(PixelLayout.yuv420p):
                masker.apply_yuv420p(vf.image)
                q.put(vf)
            q.put(None)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        with VideoWriter(dst, reader.info, input_format=PixelLayout.yuv420p) as writer:
            while (vf := q.get()) is not None:
                writer.write(vf.image, vf.pts)
        worker.join()
        return writer.frames_written


def bench_filter(clip: Path, repeat: int) -> None:
    print(f"\nVideo filter on {clip.name} (static zones, fill), wall seconds, best of {repeat} (runs alternate)")
    cam = camera(STYLES["fill"])
    runs: dict[str, Callable[[Path], int]] = {
        "plain PyAV decode+encode": lambda out: plain_transcode(clip, out),
        "previous static filter": lambda out: previous_filter(clip, out, cam),
        "masking filter (pipeline)": lambda out: mask_file(clip, out, cam).stats.frames_out,
    }
    best = dict.fromkeys(runs, float("inf"))
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat):
            for i, (name, run) in enumerate(runs.items()):
                t = time.perf_counter()
                counts[name] = run(Path(tmp) / f"{k}_{i}.mp4")
                best[name] = min(best[name], time.perf_counter() - t)
    assert len(set(counts.values())) == 1, counts
    n = next(iter(counts.values()))
    plain, prev, new = best.values()
    print(f"{'plain PyAV decode+encode':<28} {plain:7.2f} s  ({n / plain:6.1f} fps)  1.00x (the floor)")
    print(f"{'previous static filter':<28} {prev:7.2f} s  ({n / prev:6.1f} fps)  {prev / plain:.2f}x floor")
    print(f"{'masking filter (pipeline)':<28} {new:7.2f} s  ({n / new:6.1f} fps)  {new / plain:.2f}x floor "
          f"(<= 1.25x: {'ok' if new <= 1.25 * plain else 'MISSED'}), {new / prev:.2f}x previous "
          f"(<= 1.10x: {'ok' if new <= 1.10 * prev else 'MISSED'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="Clip for the filter benchmark.")
    ap.add_argument("--repeat", type=int, default=3, help="Runs per measurement; the best is kept.")
    ap.add_argument("--filter-only", action="store_true", help="Only the video filter rows (floor, previous, pipeline).")
    args = ap.parse_args()
    cv2.setNumThreads(cv2.getNumThreads())
    if not args.filter_only:
        bench_masks(args.repeat)
        bench_boxes(args.repeat)
    bench_filter(args.clip, args.repeat)


if __name__ == "__main__":
    main()
