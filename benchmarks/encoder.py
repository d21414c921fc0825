"""Encoder presets for masked recordings: CPU per frame, size and quality of each.

For each clip (default: the three clips in ../shared/eval/videos), decode it once, then encode the
same frames with each preset at the same crf on one encoder thread (the CPU a camera of a busy
`masking serve` gets), decode the result and compare it with the input (Y-PSNR over all frames).
`ingest` is the default of `masking filter` and `masking serve` (masking/video/encoding.py).

    .venv/bin/python benchmarks/encoder.py [CLIP ...] [--crf 20] [--presets ingest,veryfast,superfast]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masking.video.encoding import ENCODER_PRESETS, encoder_options  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "eval" / "videos"


def decode(clip: Path, limit: int) -> tuple[list[np.ndarray], int, int]:
    frames = []
    with av.open(str(clip)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="yuv420p"))
            if len(frames) >= limit:
                break
    if not frames:
        raise SystemExit(f"{clip}: no frames")
    return frames, frames[0].shape[1], frames[0].shape[0] * 2 // 3


def encode(frames: list[np.ndarray], width: int, height: int, preset: str, crf: int) -> tuple[float, bytes]:
    buf = io.BytesIO()
    t0 = time.process_time()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = dict[str, object](encoder_options("libx264", preset, crf))
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return (time.process_time() - t0) / len(frames), buf.getvalue()


def y_psnr(data: bytes, frames: list[np.ndarray], height: int) -> float:
    err, n = 0.0, 0
    with av.open(io.BytesIO(data)) as c:
        for k, f in enumerate(c.decode(video=0)):
            y = f.to_ndarray(format="yuv420p")[:height].astype(np.float32)
            err += float(((y - frames[k][:height]) ** 2).mean())
            n += 1
    if n != len(frames):
        raise SystemExit(f"decoded {n} of {len(frames)} frames")
    return float(10 * np.log10(255.0**2 / max(err / n, 1e-9)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, help="Clips (default: ../shared/eval/videos/*.mp4).")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--presets", default="ingest,veryfast,superfast", help=f"Comma-separated, from: {', '.join(ENCODER_PRESETS)}.")
    ap.add_argument("--frames", type=int, default=600, help="At most this many frames per clip.")
    args = ap.parse_args()
    clips = args.clips or sorted(VIDEOS.glob("*.mp4"))
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in ENCODER_PRESETS]
    if unknown:
        ap.error(f"unknown presets {unknown}; choose from {', '.join(ENCODER_PRESETS)}")
    print(f"| clip | preset | CPU ms/frame | kB/frame | Y-PSNR dB | vs {presets[0]}: CPU | size | PSNR |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for clip in clips:
        frames, width, height = decode(clip, args.frames)
        first: tuple[float, int, float] | None = None
        for preset in presets:
            cpu, data = encode(frames, width, height, preset, args.crf)
            psnr = y_psnr(data, frames, height)
            size = len(data) / len(frames)
            first = first or (cpu, len(data), psnr)
            print(f"| {clip.name} ({width}x{height}, {len(frames)} frames) | {preset} | {cpu * 1000:.2f} | "
                  f"{size / 1000:.1f} | {psnr:.2f} | {cpu / first[0]:.2f}x | {len(data) / first[1]:.2f}x | "
                  f"{psnr - first[2]:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
