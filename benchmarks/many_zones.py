"""Memory and time of static masks with many zones (issue 15, item 9); prints a table.

    PYTHONPATH=. .venv/bin/python benchmarks/many_zones.py [--zones 1 5000] [--frames 182] [--layout yuv420p]

Each case runs in a fresh process: a camera with N zones (random 20-point polygons, 8% of the frame
wide, styles fill / pixelate / blur in turn) masks `--frames` synthetic 720p frames with
`ZoneMasker` on the layout the video filter uses (yuv420p) or on BGR frames. Printed: the time to
build the masks (rasterise, first frame), the time per frame after that, the total, and the
process's peak resident memory. Point PYTHONPATH at another checkout to compare versions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import time


def _camera(n: int) -> object:
    from masking.config.zones import Camera

    rnd = random.Random(1)
    styles = [{"mode": "fill"}, {"mode": "pixelate", "block": 16}, {"mode": "blur", "strength": 31}]
    zones = []
    for i in range(n):
        x, y = rnd.random() * 0.9, rnd.random() * 0.9
        ring = [[round(x + 0.04 + 0.04 * math.cos(2 * math.pi * k / 20), 5),
                 round(y + 0.04 + 0.04 * math.sin(2 * math.pi * k / 20), 5)] for k in range(20)]
        zones.append({"id": f"z{i}", "kind": "privacy_mask", "polygon": ring, "style": styles[i % 3]})
    return Camera.model_validate({"camera_id": "bench", "zones": zones})


def _case(n: int, frames: int, layout: str) -> dict[str, float]:
    import numpy as np

    from masking.masks.apply import ZoneMasker

    width, height = 1280, 720
    camera = _camera(n)
    masker = ZoneMasker(camera)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    if layout == "yuv420p":
        frame = rng.integers(0, 255, (height * 3 // 2, width), np.uint8)
        apply = masker.apply_yuv420p
    else:
        frame = rng.integers(0, 255, (height, width, 3), np.uint8)
        apply = masker.apply
    t0 = time.perf_counter()
    apply(frame.copy())
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(frames - 1):
        apply(frame.copy())
    rest = time.perf_counter() - t1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"zones": n, "first_s": first, "per_frame_ms": 1000 * rest / max(1, frames - 1),
            "total_s": first + rest, "peak_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zones", type=int, nargs="+", default=[1, 100, 1000, 5000])
    ap.add_argument("--frames", type=int, default=182)
    ap.add_argument("--layout", choices=("yuv420p", "bgr"), default="yuv420p")
    ap.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(_case(args.case, args.frames, args.layout)))
        return
    print(f"{args.frames} frames of 720p ({args.layout}); PYTHONPATH={os.environ.get('PYTHONPATH', '')}")
    print(f"{'zones':>6} {'build s':>8} {'ms/frame':>9} {'total s':>8} {'peak MB':>8}")
    for n in args.zones:
        out = subprocess.run([sys.executable, __file__, "--case", str(n), "--frames", str(args.frames),
                              "--layout", args.layout], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['zones']:>6} {r['first_s']:>8.2f} {r['per_frame_ms']:>9.2f} {r['total_s']:>8.1f} {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
