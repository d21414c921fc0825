"""Sealing overhead: `masking filter --detect faces` with and without `--vault`, side by side.

    .venv/bin/python benchmarks/vault.py                 # office_v001 looped 3x (546 frames), 3 rounds
    .venv/bin/python benchmarks/vault.py --loop 5 --rounds 5 --clip other.mp4

Both runs read the same clip (office_v001.mp4 played `--loop` times back to back with continuous
PTS, re-encoded once into a temporary file), write H.264 the same way and detect faces on every
frame; the vault run also captures the original pixels under every dynamic mask, encrypts them
(AES-256-GCM) into `OUT.sealed`, hashes both files and appends a register entry. The runs alternate
(plain, vault, plain, vault, ...) so machine load hits both alike; each row is the median over
`--rounds`. CPU seconds come from the child's rusage (`os.wait4`, all threads); the overhead is
the vault run's over the plain run's, in CPU per frame and in wall time. The floor is 15%.
"policy frames" counts, per round, the frames masked by the fail policy because detection was late
(a loaded machine): the vault seals those whole, which makes the sidecar larger.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "eval" / "videos" / "office_v001.mp4"
FLOOR = 0.15
ZONES = """cameras:
  - camera_id: bench
    zones:
      - {id: corner, kind: privacy_mask, polygon: [[0, 0], [0.25, 0], [0.25, 0.25], [0, 0.25]]}
"""


def looped_clip(src: Path, loop: int, out: Path) -> int:
    """`src` played `loop` times with continuous PTS into `out`; returns the frame count."""
    sys.path.insert(0, str(ROOT))
    from masking.video.reader import VideoReader
    from masking.video.writer import VideoWriter

    with VideoReader(src) as r:
        frames = [(f.image, f.pts or 0) for f in r.frames("yuv420p")]
        info = r.info
    step = frames[-1][1] - frames[-2][1] if len(frames) > 1 else 1
    span = frames[-1][1] + step
    with VideoWriter(out, info, crf=18, input_format="yuv420p") as w:
        for k in range(loop):
            for image, pts in frames:
                w.write(image, pts + k * span)
    return len(frames) * loop


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s, frames masked by the fail policy) of one `masking filter` child process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode()}")
    m = re.search(r"(\d+) masked by policy", text)
    return wall, usage.ru_utime + usage.ru_stime, int(m.group(1)) if m else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--loop", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MASKING_PASSPHRASE_A": "bench-passphrase-a",
           "MASKING_PASSPHRASE_B": "bench-passphrase-b"}
    py = [sys.executable, "-m", "masking", "-q"]
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        t = Path(tmp)
        clip = t / "clip.mp4"
        n = looped_clip(args.clip, args.loop, clip)
        (t / "zones.yaml").write_text(ZONES)
        subprocess.run([*py, "vault", "init", str(t / "vault"), "--custodians", "A,B", "--threshold", "2"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        base = [*py, "filter", str(clip), "--zones", str(t / "zones.yaml"), "--detect", "faces"]
        results: dict[str, list[tuple[float, float, int]]] = {"plain": [], "vault": []}
        for i in range(args.rounds):
            for name in ("plain", "vault"):
                out = t / f"{name}_{i}.mp4"
                extra = ["--vault", str(t / "vault")] if name == "vault" else []
                results[name].append(run([*base, "-o", str(out), *extra], env))
        video = (t / "vault_0.mp4").stat().st_size
        sealed = (t / "vault_0.mp4.sealed").stat().st_size
    print(f"# sealing overhead: {args.clip.name} x{args.loop} ({n} frames), faces on every frame, "
          f"median of {args.rounds} alternating rounds; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'run':<8} {'wall s':>8} {'fps':>7} {'CPU ms/frame':>13} {'policy frames':>14}")
    med = {}
    for name, rows in results.items():
        wall = statistics.median(w for w, _, _ in rows)
        cpu = statistics.median(c for _, c, _ in rows)
        med[name] = (wall, cpu)
        policy = "/".join(str(p) for _, _, p in rows)
        print(f"{name:<8} {wall:8.2f} {n / wall:7.1f} {1000 * cpu / n:13.1f} {policy:>14}")
    cpu_over = med["vault"][1] / med["plain"][1] - 1
    wall_over = med["vault"][0] / med["plain"][0] - 1
    print(f"overhead: CPU {100 * cpu_over:+.1f}%, wall {100 * wall_over:+.1f}% (floor {100 * FLOOR:.0f}%: "
          f"{'within' if max(cpu_over, wall_over) <= FLOOR else 'ABOVE'})")
    print(f"sidecar (round 1): {sealed / 1e6:.1f} MB next to {video / 1e6:.1f} MB of video ({sealed / video:.2f}x; "
          "zlib-compressed pixels, encrypted; a frame blacked by the fail policy is sealed whole)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
