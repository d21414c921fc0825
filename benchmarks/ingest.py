"""Ingest benchmark: `masking filter` (static zones, faces every k-th frame, faces + bodies) against
plain PyAV decode+encode (the floor) and the `deface` CLI, at 720p and 1080p; then `masking serve`
with N simultaneous 720p cameras with face detection.

    .venv/bin/python benchmarks/ingest.py                  # everything (deface if installed)
    .venv/bin/python benchmarks/ingest.py --install-deface # first create /tmp/deface-venv with deface
    .venv/bin/python benchmarks/ingest.py --skip-deface --resolutions 720 --cameras 4
    .venv/bin/python benchmarks/ingest.py --skip-deface --resolutions 720 --cameras 0 --static-only --previous 5e77f25

`--previous REF` adds a row running the `masking filter` of git revision REF (its `masking/` package
exported with `git archive` into a temporary folder) on the same clip: today's code side by side
with an earlier one (5e77f25: the static filter before the one frame pipeline).

deface runs from its OWN virtual environment (default /tmp/deface-venv; `--install-deface` makes it
with `python -m venv` + `pip install deface==1.5.0`), never from the project's .venv.

Every run (floor, ours, deface alike) reads the same clip: office_v001.mp4 played `--loop` times
(default 5: 910 frames at 720p) back to back with continuous PTS, re-encoded once into a temporary
file (and once more, upscaled, for 1080p). A run's fps (frames / wall time of the whole process)
then carries little of the fixed start-up cost (interpreter, imports, model loading: ~0.5-1 s),
which a recorder running for days pays once; that cost is measured on its own `start-up` rows, on
a 1-frame clip. The leak check looks at the first loop only (the other loops hold the same faces).

Per run: fps (input frames / wall time), CPU seconds per frame and peak RSS of the child process
(`os.wait4` rusage), and for face runs an independent leak check: OpenCV's own
`cv2.FaceDetectorYN` (the same YuNet file, score 0.6, on the full-resolution input frame, as
benchmarks/faces_left.py) finds faces in every INPUT frame; a face counts
as unmasked when the same box in the OUTPUT frame still matches the input (mean absolute grey
difference below 12 levels, i.e. codec noise). Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "eval" / "videos" / "office_v001.mp4"
MAD_UNMASKED = 12.0
REFERENCE_SCORE = 0.6  # the reference YuNet's score threshold (issue 10)  # grey levels: below this the face region is unchanged up to codec noise
ZONES = """cameras:
  - camera_id: bench
    zones:
      - id: corner
        kind: privacy_mask
        polygon: [[0, 0], [0.25, 0], [0.25, 0.25], [0, 0.25]]
"""


@dataclass
class Run:
    name: str
    resolution: str
    frames: int
    wall_s: float
    cpu_s: float
    peak_mb: float
    ok: bool
    faces: int | None = None
    unmasked: int | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


# ---------------------------------------------------------------------------- helpers
def measure(cmd: list[str], log: Path) -> tuple[float, float, float, int]:
    """Run `cmd`; (wall s, CPU s, peak RSS MB, exit code) of the child (and its waited children)."""
    with log.open("w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, proc.returncode


def count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sum(1 for _ in c.decode(s))


def make_clip(src: Path, dst: Path, loops: int = 1, size: tuple[int, int] | None = None,
              max_frames: int | None = None) -> None:
    """Re-encode `src` once into `dst`: played `loops` times back to back with continuous PTS (one
    frame step apart, in the source's time base and rate), optionally scaled to `size` (bicubic),
    optionally cut after `max_frames` frames. Every run of a resolution reads the same file."""
    import av

    with av.open(str(src)) as probe:
        s = probe.streams.video[0]
        rate, tb = s.average_rate, s.time_base
        width, height = size or (s.codec_context.width, s.codec_context.height)
    step = max(1, round(1 / (rate * tb)))
    n = 0
    with av.open(str(dst), "w") as out:
        o = out.add_stream("libx264", rate=rate)
        o.width, o.height, o.pix_fmt = width, height, "yuv420p"
        o.time_base = tb
        o.options = {"crf": "18", "preset": "veryfast"}
        for _ in range(loops):
            with av.open(str(src)) as inp:
                for f in inp.decode(inp.streams.video[0]):
                    if max_frames is not None and n >= max_frames:
                        break
                    g = f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                    g.pts, g.time_base, g.pict_type = n * step, tb, 0
                    n += 1
                    for p in o.encode(g):
                        out.mux(p)
        for p in o.encode():
            out.mux(p)


def floor(src: str, dst: str) -> None:
    """Plain PyAV decode + encode, the same encoder settings as `masking filter` (the floor)."""
    import av

    sys.path.insert(0, str(ROOT))
    from masking.video.encoding import DEFAULT_PRESET, encoder_options

    with av.open(src) as inp, av.open(dst, "w") as out:
        s = inp.streams.video[0]
        s.thread_type = "AUTO"
        o = out.add_stream("libx264", rate=s.average_rate)
        o.width, o.height, o.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        o.time_base = s.time_base
        o.codec_context.thread_count = 0
        o.options = dict[str, object](encoder_options("libx264", DEFAULT_PRESET, 20))
        for f in inp.decode(s):
            f.pict_type = 0
            for p in o.encode(f):
                out.mux(p)
        for p in o.encode():
            out.mux(p)


# ---------------------------------------------------------------------------- leak check
class FaceReference:
    """cv2.FaceDetectorYN on the input frames, cached per clip."""

    def __init__(self) -> None:
        import cv2

        from masking.detect.dynamic import PRESETS
        from masking.models.cache import model_path

        spec = PRESETS["faces"]
        self.max_side = 1 << 16  # the full-resolution frame, as benchmarks/faces_left.py (issue 10)
        self.threshold = REFERENCE_SCORE
        self._det = cv2.FaceDetectorYN.create(str(model_path(spec.model)), "", (320, 320), self.threshold, 0.3, 5000)
        self._cache: dict[Path, list] = {}

    def boxes(self, clip: Path, limit: int | None = None) -> list:
        """Reference face boxes (x, y, w, h at full resolution) of the first `limit` frames."""
        if clip not in self._cache:
            import cv2
            import numpy as np

            from masking.video.reader import VideoReader

            out = []
            with VideoReader(clip) as r:
                for vf in r:
                    if limit is not None and vf.index >= limit:
                        break
                    img = vf.image
                    h, w = img.shape[:2]
                    s = min(1.0, self.max_side / max(h, w))
                    small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else img
                    self._det.setInputSize((small.shape[1], small.shape[0]))
                    _, faces = self._det.detect(small)
                    b = np.zeros((0, 4)) if faces is None else faces[:, :4] / s
                    out.append(b)  # x, y, w, h at full resolution
            self._cache[clip] = out
        return self._cache[clip]

    def unmasked(self, clip: Path, output: Path, limit: int | None = None) -> tuple[int, int]:
        """(faces found in the input, faces whose region is unchanged in the output), over the first
        `limit` frames (the first loop of a looped clip: every loop holds the same faces)."""
        import cv2
        import numpy as np

        from masking.video.reader import VideoReader

        boxes = self.boxes(clip, limit)
        total = leaked = 0
        with VideoReader(clip) as a, VideoReader(output) as b:
            for (va, vb), fb in zip(zip(a, b), boxes):
                ga = cv2.cvtColor(va.image, cv2.COLOR_BGR2GRAY).astype(np.int16)
                gb = cv2.cvtColor(vb.image, cv2.COLOR_BGR2GRAY).astype(np.int16)
                h, w = ga.shape
                for x, y, bw, bh in fb:
                    x0, y0 = max(0, int(x)), max(0, int(y))
                    x1, y1 = min(w, int(np.ceil(x + bw))), min(h, int(np.ceil(y + bh)))
                    if x1 <= x0 or y1 <= y0:
                        continue
                    total += 1
                    if float(np.abs(ga[y0:y1, x0:x1] - gb[y0:y1, x0:x1]).mean()) < MAD_UNMASKED:
                        leaked += 1
        return total, leaked


# ---------------------------------------------------------------------------- runs
def masking_cmd(*args: str, package_root: Path | None = None) -> list[str]:
    """`masking -q filter ARGS`, from this checkout or from `package_root` (an exported revision)."""
    if package_root is None:
        return [sys.executable, "-m", "masking", "-q", "filter", *args]
    boot = (f"import sys; sys.path.insert(0, {str(package_root)!r}); from masking.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", boot, "-q", "filter", *args]


def export_revision(ref: str, dest: Path) -> Path:
    """`masking/` of git revision `ref`, exported into `dest` (for `--previous`)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "masking"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def bench_startup(one: Path, res: str, tmp: Path, zones: Path, deface: Path | None) -> list[Run]:
    """The fixed cost of one run, on a 1-frame clip: interpreter start-up, imports, model loading,
    opening input and output. A recorder pays it once per camera, not per frame."""
    plans = [("start-up: masking filter --detect faces (1 frame)",
              masking_cmd(str(one), "-o", "{out}", "--zones", str(zones), "--detect", "faces"))]
    if deface is not None:
        plans.append(("start-up: deface (1 frame)", [str(deface), str(one), "-o", "{out}"]))
    runs = []
    for k, (name, cmd) in enumerate(plans):
        out, log = tmp / f"startup_{res}_{k}.mp4", tmp / f"startup_{res}_{k}.log"
        print(f"  {res} {name} ...", file=sys.stderr, flush=True)
        wall, cpu, rss, rc = measure([c.replace("{out}", str(out)) for c in cmd], log)
        ok = rc == 0 and out.exists()
        runs.append(Run(name, res, 1, wall, cpu, rss, ok, note=f"{wall:.2f} s wall, {cpu:.2f} CPU s per run" if ok
                        else f"exit {rc}: {log.read_text()[-300:]}"))
        out.unlink(missing_ok=True)
    return runs


def bench_clip(clip: Path, res: str, tmp: Path, zones: Path, deface: Path | None, ref: FaceReference,
               loop_frames: int | None = None, previous: tuple[str, Path] | None = None,
               static_only: bool = False) -> list[Run]:
    n_in = count_frames(clip)
    runs: list[Run] = []
    plans: list[tuple[str, list[str], bool]] = [
        ("PyAV decode+encode (floor)", [sys.executable, __file__, "--floor", str(clip), "{out}"], False),
        ("masking filter: static zones", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones)), False),
    ]
    if previous is not None:
        plans.append((f"previous masking filter ({previous[0]}): static zones",
                      masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), package_root=previous[1]), False))
    if not static_only:
        plans += [
            ("masking filter: faces every frame", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "faces", "--detect-every", "1"), True),
            ("masking filter: faces every 2nd", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "faces", "--detect-every", "2"), True),
            ("masking filter: faces every 3rd", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "faces", "--detect-every", "3"), True),
            ("masking filter: faces + bodies", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "faces,bodies", "--detect-every", "1"), True),
        ]
    if deface is not None and not static_only:
        plans += [
            ("deface (default)", [str(deface), str(clip), "-o", "{out}"], True),
            ("deface --scale 640x360", [str(deface), str(clip), "-o", "{out}", "--scale", "640x360"], True),
        ]
    for k, (name, cmd, faces) in enumerate(plans):
        out = tmp / f"{res}_{k}.mp4"
        log = tmp / f"{res}_{k}.log"
        cmd = [c.replace("{out}", str(out)) for c in cmd]
        print(f"  {res} {name} ...", file=sys.stderr, flush=True)
        wall, cpu, rss, rc = measure(cmd, log)
        ok = rc == 0 and out.exists()
        run = Run(name, res, n_in, wall, cpu, rss, ok, note="" if ok else f"exit {rc}: {log.read_text()[-300:]}")
        if ok:
            n_out = count_frames(out)
            if n_out != n_in:
                run.note = f"{n_out} frames out for {n_in} in"
            if faces:
                run.faces, run.unmasked = ref.unmasked(clip, out, loop_frames)
        runs.append(run)
        out.unlink(missing_ok=True)
    return runs


def bench_presets(clip: Path, res: str, tmp: Path, zones: Path, ref: FaceReference, loop_frames: int | None = None) -> list[Run]:
    """The person presets of issue 10 beside the face rows: whole people, and faces with people."""
    plans = [
        ("masking filter: persons every frame", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "persons")),
        ("masking filter: faces + persons", masking_cmd(str(clip), "-o", "{out}", "--zones", str(zones), "--detect", "faces,persons")),
    ]
    n_in, runs = count_frames(clip), []
    for k, (name, cmd) in enumerate(plans):
        out, log = tmp / f"{res}_p{k}.mp4", tmp / f"{res}_p{k}.log"
        print(f"  {res} {name} ...", file=sys.stderr, flush=True)
        wall, cpu, rss, rc = measure([c.replace("{out}", str(out)) for c in cmd], log)
        ok = rc == 0 and out.exists()
        run = Run(name, res, n_in, wall, cpu, rss, ok, note="" if ok else f"exit {rc}: {log.read_text()[-300:]}")
        if ok:
            run.faces, run.unmasked = ref.unmasked(clip, out, loop_frames)
        runs.append(run)
        out.unlink(missing_ok=True)
    return runs


def bench_cameras(clip: Path, tmp: Path, zones: Path, max_n: int, every: int) -> list[Run]:
    """`masking serve` with n = 1..max_n cameras (720p, faces); stop at the first n below 25 fps."""
    runs = []
    for n in range(1, max_n + 1):
        cams = "\n".join(
            f"  - {{name: cam{i}, source: {json.dumps(str(clip))}, zones: {json.dumps(str(zones))}, "
            f"sink: {{path: {json.dumps(str(tmp / f'cam{i}.mp4'))}}}, detection: {{detect: faces, every: {every}}}}}"
            for i in range(n)
        )
        cfg = tmp / f"serve_{n}.yaml"
        cfg.write_text(f"stats_interval_s: 60\ncameras:\n{cams}\n")
        log = tmp / f"serve_{n}.log"
        print(f"  serve, {n} camera(s) ...", file=sys.stderr, flush=True)
        wall, cpu, rss, rc = measure([sys.executable, "-m", "masking", "serve", str(cfg)], log)
        fps = [float(m) for m in re.findall(r"final camera cam\d+: .* fps=([\d.]+)", log.read_text())]
        frames = count_frames(clip) * n
        run = Run(f"serve: {n} x 720p faces every {every}", "720p", frames, wall, cpu, rss, rc == 0 and len(fps) == n,
                  extra={"min_camera_fps": min(fps) if fps else 0.0})
        runs.append(run)
        for i in range(n):
            (tmp / f"cam{i}.mp4").unlink(missing_ok=True)
        if not fps or min(fps) < 25.0:
            break
    return runs


def bench_outputs(clip: Path, tmp: Path, zones: Path, max_n: int) -> list[Run]:
    """Live outputs of `masking serve` (720p): CPU per frame beside an H.264 file alone, latency from
    a frame entering the engine to its bytes leaving (source paced in real time, one HTTP client
    reading the TS stream, a GStreamer RTSP server in RECORD mode), and how many cameras with an H.264
    file + HTTP output one machine holds at 25 fps, with static zones and with faces."""
    import socket
    import threading

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def serve(name: str, cams: list[str], port: int, frames: int, client: str | None = None) -> Run:
        cfg = tmp / "serve_out.yaml"
        cfg.write_text(f"stats_interval_s: 60\nhttp: {{host: 127.0.0.1, port: {port}}}\ncameras:\n" + "\n".join(cams) + "\n")
        log = tmp / "serve_out.log"
        stop = threading.Event()
        reader = None
        if client:
            def read() -> None:  # one HTTP client draining the TS stream for the whole run
                import httpx
                while not stop.is_set():
                    try:
                        with httpx.stream("GET", client, timeout=5) as r:
                            for _ in r.iter_bytes():
                                if stop.is_set():
                                    return
                    except httpx.HTTPError:
                        time.sleep(0.2)
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
        print(f"  {name} ...", file=sys.stderr, flush=True)
        wall, cpu, rss, rc = measure([sys.executable, "-m", "masking", "serve", str(cfg)], log)
        stop.set()
        text = log.read_text()
        fps = [float(m) for m in re.findall(r"final camera \S+: .* fps=([\d.]+)", text)]
        extra: dict[str, float] = {"min_camera_fps": min(fps) if fps else 0.0}
        for kind, p50, p99 in re.findall(r"live (\S+): frame-in to bytes-out p50/p99=(\d+)/(\d+) ms", text):
            extra[f"{kind}_p50_ms"], extra[f"{kind}_p99_ms"] = float(p50), float(p99)
        return Run(name, "720p", frames, wall, cpu, rss, rc == 0 and bool(fps), extra=extra)

    def cam(i: int, outputs: str, detect: bool, pace: bool) -> str:
        det = ", detection: {detect: faces}" if detect else ""
        pc = ", pace: realtime" if pace else ""
        return (f"  - {{name: cam{i}, source: {json.dumps(str(clip))}, zones: {json.dumps(str(zones))}{pc}, "
                f"outputs: [{outputs}]{det}}}")

    runs: list[Run] = []
    n_frames = count_frames(clip)
    rec = json.dumps(str(tmp / "out.mp4"))
    file_out = f"{{format: h264, path: {rec}}}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/cameras/cam0/stream.ts"
    runs.append(serve("outputs: h264 file", [cam(0, file_out, False, False)], port, n_frames))
    runs.append(serve("outputs: h264 file + http (1 client)", [cam(0, file_out + ", {format: http}", False, False)],
                      port, n_frames, client=url))
    server = None
    record = ROOT / "tests" / "rtsp_server.py"
    rtsp_port = free_port()
    try:
        server = subprocess.Popen(["/usr/bin/python3", str(record), "--port", str(rtsp_port), "--record", str(tmp / "rec"),
                                   "--mount", "/cam0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = server.stdout.readline().decode() if server.stdout else ""
        if "READY" in ready:
            threading.Thread(target=server.stdout.read, daemon=True).start()  # type: ignore[union-attr]
            pub = f"{{format: rtsp-publish, url: rtsp://127.0.0.1:{rtsp_port}/cam0}}"
            runs.append(serve("outputs: h264 file + rtsp-publish", [cam(0, file_out + ", " + pub, False, False)],
                              port, n_frames))
            runs.append(serve("latency: http + rtsp-publish, paced", [cam(0, "{format: http}, " + pub, False, True)],
                              port, n_frames, client=url))
        else:
            print(f"  (no GStreamer RTSP record server: {ready.strip()}; rtsp-publish rows skipped)", file=sys.stderr)
    finally:
        if server is not None:
            server.kill()
    for detect in (False, True):
        for n in range(1, max_n + 1):
            outs = [f"{{format: h264, path: {json.dumps(str(tmp / f'cam{i}.mp4'))}}}, {{format: http}}" for i in range(n)]
            r = serve(f"serve: {n} x 720p {'faces' if detect else 'static'}, h264 + http",
                      [cam(i, outs[i], detect, False) for i in range(n)], port, n_frames * n)
            runs.append(r)
            if r.extra.get("min_camera_fps", 0.0) < 25.0:
                break
    return runs


def ensure_deface(venv: Path, install: bool) -> Path | None:
    exe = venv / "bin" / "deface"
    if exe.exists():
        return exe
    if not install:
        print(f"deface not found in {venv}: run with --install-deface (or --skip-deface)", file=sys.stderr)
        return None
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "deface==1.5.0"], check=True)
    return exe if exe.exists() else None


def table(runs: list[Run]) -> str:
    cores = os.cpu_count() or 1
    lines = [f"| resolution | run | fps | CPU s/frame | CPU-bound fps on {cores} idle cores | peak RSS MB | faces in input | left unmasked | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        if r.name.startswith("start-up"):
            lines.append(f"| {r.resolution} | {r.name} |  |  |  | {r.peak_mb:.0f} |  |  | {r.note if r.ok else 'FAILED ' + r.note} |")
            continue
        faces = "" if r.faces is None else str(r.faces)
        leak = "" if r.unmasked is None else str(r.unmasked)
        note = r.note or ("" if not r.extra else ", ".join(f"{k}={v:.1f}" for k, v in r.extra.items()))
        cpu = r.cpu_s / max(r.frames, 1)
        lines.append(f"| {r.resolution} | {r.name} | {r.fps:.1f} | {cpu:.4f} | {cores / cpu if cpu else 0:.0f} | {r.peak_mb:.0f} "
                     f"| {faces} | {leak} | {note if r.ok else 'FAILED ' + note} |")
    return "\n".join(lines)


def startup(by: dict[tuple[str, str], Run], res: str, tool: str) -> Run | None:
    """The tool's start-up row at `res` (else at any resolution: start-up hardly depends on it)."""
    rows = [r for (rr, name), r in by.items() if name.startswith(f"start-up: {tool}")]
    return next((r for r in rows if r.resolution == res), rows[0] if rows else None)


def steady_fps(run: Run, up: Run) -> float:
    """fps once started: the run's wall time less the tool's start-up (a 1-frame run)."""
    return run.frames / max(run.wall_s - up.wall_s, 1e-9)


def summary(runs: list[Run]) -> list[str]:
    """The issue's floors, as ratios (wall-clock fps and CPU per frame)."""
    by = {(r.resolution, r.name): r for r in runs if r.ok}
    out = []
    for res in ("720p", "1080p"):
        faces, deface = by.get((res, "masking filter: faces every frame")), by.get((res, "deface (default)"))
        floor_run, static = by.get((res, "PyAV decode+encode (floor)")), by.get((res, "masking filter: static zones"))
        if faces and deface:
            steady = ""
            ours_up, their_up = startup(by, res, "masking filter"), startup(by, res, "deface")
            if ours_up is not None and their_up is not None:
                ratio = steady_fps(faces, ours_up) / steady_fps(deface, their_up)
                steady = f", {ratio:.1f}x after start-up (each tool's start-up row subtracted)"
            out.append(f"{res}: faces every frame vs deface default: {faces.fps / deface.fps:.1f}x fps with start-up"
                       f"{steady}, {deface.cpu_s / faces.cpu_s:.1f}x less CPU per frame (floor: 10x at 720p, "
                       "start-up measured separately)")
        if faces:
            out.append(f"{res}: faces every frame: {faces.fps:.1f} fps (floor at 1080p: 25)")
        if floor_run and static:
            out.append(f"{res}: static zones / decode+encode: {floor_run.fps / static.fps:.2f}x time, "
                       f"{static.cpu_s / floor_run.cpu_s:.2f}x CPU (ceiling: 1.25x)")
        prev = next((r for (rr, name), r in by.items() if rr == res and name.startswith("previous")), None)
        if prev and static:
            out.append(f"{res}: static zones / {prev.name.split(':')[0]}: {prev.fps / static.fps:.2f}x time, "
                       f"{static.cpu_s / prev.cpu_s:.2f}x CPU (ceiling: 1.10x)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="720p input clip (default: office_v001.mp4).")
    ap.add_argument("--resolutions", default="720,1080", help="Which clips to run: 720, 1080 or both.")
    ap.add_argument("--skip-deface", action="store_true")
    ap.add_argument("--install-deface", action="store_true", help="Create the deface venv if missing.")
    ap.add_argument("--deface-venv", type=Path, default=Path("/tmp/deface-venv"))
    ap.add_argument("--cameras", type=int, default=6, help="Try up to N simultaneous 720p cameras (0: skip).")
    ap.add_argument("--cameras-every", type=int, default=1, help="Detection cadence for the camera runs.")
    ap.add_argument("--loop", type=int, default=5,
                    help="Play the clip N times back to back (re-encoded once into a temporary file, continuous PTS; "
                         "every run reads it): the fixed start-up cost, measured on its own row, then weighs little, "
                         "as in a recorder running for days. The leak check looks at the first loop only. Default 5.")
    ap.add_argument("--outputs", type=int, default=0, metavar="N",
                    help="Also measure the live outputs (http, rtsp-publish) and how many cameras with an H.264 file + "
                         "HTTP output hold 25 fps, trying up to N cameras (0: skip).")
    ap.add_argument("--skip-presets", action="store_true", help="Skip the persons and faces+persons rows.")
    ap.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    ap.add_argument("--previous", metavar="REF", help="Also run the static filter of git revision REF (e.g. 5e77f25).")
    ap.add_argument("--static-only", action="store_true", help="Only the floor and static-zone rows (and start-up).")
    ap.add_argument("--floor", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        floor(*args.floor)
        return 0
    if args.loop < 1:
        print("--loop must be >= 1", file=sys.stderr)
        return 2
    if not args.clip.is_file():
        print(f"{args.clip}: clip not found", file=sys.stderr)
        return 2
    deface = None if args.skip_deface else ensure_deface(args.deface_venv, args.install_deface)
    ref = FaceReference()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as d:
        tmp = Path(d)
        zones = tmp / "zones.yaml"
        zones.write_text(ZONES)
        wanted = {r.strip() for r in args.resolutions.split(",")}
        loop_frames = count_frames(args.clip) if args.loop > 1 else None
        print(f"building the {args.loop}x looped clips (re-encoded once, continuous PTS) ...", file=sys.stderr, flush=True)
        clips: dict[str, Path] = {}
        if "720" in wanted or args.cameras > 0 or args.outputs > 0:
            clips["720p"] = tmp / "clip_720p.mp4"
            make_clip(args.clip, clips["720p"], args.loop)
        if "1080" in wanted:
            clips["1080p"] = tmp / "clip_1080p.mp4"
            make_clip(args.clip, clips["1080p"], args.loop, size=(1920, 1080))
        one = tmp / "one_frame.mp4"
        make_clip(args.clip, one, 1, max_frames=1)
        runs += bench_startup(one, "720p", tmp, zones, deface)
        previous = (args.previous, export_revision(args.previous, tmp / "previous")) if args.previous else None
        for res in ("720p", "1080p"):
            if res[:-1] in wanted:
                runs += bench_clip(clips[res], res, tmp, zones, deface, ref, loop_frames, previous, args.static_only)
                if not args.skip_presets and not args.static_only:
                    runs += bench_presets(clips[res], res, tmp, zones, ref, loop_frames)
        if args.cameras > 0:
            runs += bench_cameras(clips["720p"], tmp, zones, args.cameras, args.cameras_every)
        if args.outputs > 0:
            runs += bench_outputs(clips["720p"], tmp, zones, args.outputs)
    print(table(runs))
    print()
    for line in summary(runs):
        print(line)
    cams = [r for r in runs if r.name.startswith("serve") and r.ok and r.extra.get("min_camera_fps", 0) >= 25]
    if args.cameras > 0:
        print(f"\nlargest N holding 25 fps per camera (720p, faces every {args.cameras_every}): "
              f"{max((int(r.name.split()[1]) for r in cams), default=0)}")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"unmasked = reference YuNet face whose output region differs from the input by < {MAD_UNMASKED} grey levels")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "fps": r.fps} for r in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
