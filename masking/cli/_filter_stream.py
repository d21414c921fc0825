"""The detection and streaming options of `masking filter`, and the handler that runs a filter.

`masking/cli/filter.py` adds these options with `add_stream_options(parser)` and hands every run to
`run_filter(args, camera)`: one `masking.stream` pipeline job (built by `masking.stream.build`)
for every input (video file, URL, image, image folder, raw frames) and output.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import ValidationError

from masking.cli import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, show_progress
from masking.config.zones import Camera, MaskStyle
from masking.errors import ConfigError
from masking.stream.build import InputKind, LiveOutputs, OutputSpec, RawInput, StopSignal, filter_job, run_job
from masking.stream.config import DetectionSpec, apply_detection
from masking.stream.engine import CameraResult
from masking.stream.stats import CameraStats
from masking.video.layout import PixelLayout

if TYPE_CHECKING:
    from masking.vault.recorder import VaultSealer
    from masking.web.live import LiveServer

log = logging.getLogger(__name__)

# The default cadence is DetectConfig.every's (1), confirmed by benchmarks/ingest.py: on 2 cores at
# 720p, detecting every 2nd/3rd frame saves only ~10-15% CPU per frame (decode + encode dominate),
# while every frame is the only cadence where nothing is inferred.
DEFAULT_EVERY_NOTE = (
    "Default: the zones file's `detect.every`, else 1: every frame is then examined, and every 2nd/3rd "
    "frame saves only 10-15%% CPU at 720p (decoding and encoding dominate). With K > 1 "
    "the detectors run 0.15 below their thresholds and each frame also gets the next detection's masks."
)


def add_stream_options(p: argparse.ArgumentParser) -> None:
    """Add detection, fail-policy, segment and raw-I/O options to the filter parser."""
    g = p.add_argument_group("detection (dynamic masks; fail closed)")
    g.add_argument("--detect", metavar="PRESETS",
                   help="Mask detections too: `faces` (source resolution where needed), `persons` (whole people), "
                        "`heads` (the head of every person), `bodies` (exposed bodies), or several, e.g. "
                        "`faces,persons`. Default: the zones file's `detect` section, none if absent.")
    g.add_argument("--detect-every", type=int, metavar="K",
                   help="Run detection on every K-th frame; masks are held and grown between detections. "
                        "K > 1 trades privacy for speed: a face that appears and leaves between two detections "
                        "is not masked. " + DEFAULT_EVERY_NOTE)
    g.add_argument("--fail-policy", choices=("full", "zones"),
                   help="When detection fails, is late or its model is missing: `full` blacks the whole frame, "
                        "`zones` masks every zone plus the last detections grown. Default: full (privacy first).")
    g.add_argument("--max-latency", type=float, metavar="MS",
                   help="A frame waits at most MS milliseconds for its detection, then gets the fail policy "
                        "(or the last detections grown, if recent). Default 1000.")
    g.add_argument("--hold-motion", type=float, default=0.02, metavar="F",
                   help="Held masks grow by F x the frame's long side per frame since their detection "
                        "(default 0.02: a brisk walk at 25 fps).")
    g.add_argument("--vault", metavar="VAULT",  # vault (issue 12)
                   help="Seal the original pixels under the dynamic masks for this vault (`masking vault init`): "
                        "each output segment gets a sidecar OUT.sealed and a register entry. Static zones are never sealed.")
    o = p.add_argument_group("streaming input/output")
    o.add_argument("--output-format", choices=("h264", "rawvideo", "jpeg-dir"),
                   help="h264 file (default), raw bgr24 frames (`-o -` for stdout, e.g. into ffmpeg or a recorder), "
                        "or a folder of JPEGs.")
    o.add_argument("--segment-seconds", type=float, metavar="S",
                   help="h264 only: cut the output into files of S seconds of source time (NAME_00000.mp4, ...); "
                        "each appears only when complete.")
    o.add_argument("--input-format", choices=("rawvideo",),
                   help="Read raw frames (with `-` for stdin); needs --size and --pix-fmt.")
    o.add_argument("--size", metavar="WxH", help="Raw input frame size, e.g. 1280x720.")
    o.add_argument("--pix-fmt", choices=(PixelLayout.bgr24.value,), help="Raw input pixel format (bgr24).")
    o.add_argument("--fps", type=Fraction, default=None, metavar="RATE",
                   help="Raw input frame rate, sets the timestamps (default 25).")
    lv = p.add_argument_group("live outputs (besides the output file; video, stream or raw input)")
    lv.add_argument("--http", metavar="HOST:PORT",
                    help="Also serve the masked stream live: MPEG-TS at http://HOST:PORT/cameras/ID/stream.ts, HLS at "
                         ".../index.m3u8 (ID: the camera id). Loopback needs no token; any other address warns and "
                         "prints the URLs with the token.")
    lv.add_argument("--publish", metavar="RTSP_URL", action="append", default=[],
                    help="Also push the masked stream to an RTSP server (ANNOUNCE/RECORD over TCP: MediaMTX, go2rtc), "
                         "reconnecting with back-off; repeatable.")
    lv.add_argument("--keyframe-seconds", type=float, default=2.0, metavar="S",
                    help="Keyframe interval of the live outputs (default 2: a recorder starts within 2 s).")
    lv.add_argument("--pace", choices=("none", "realtime"), default="none",
                    help="realtime: read a video file at its own frame rate (replaying footage into a recorder).")


def _size(text: str | None) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,9})x(\d{1,9})", text or "")
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"--size: expected WxH such as 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _raw(args: argparse.Namespace) -> RawInput | None:
    if args.input_format != "rawvideo":
        return None
    if args.pix_fmt != PixelLayout.bgr24:
        raise ConfigError("--input-format rawvideo needs --pix-fmt bgr24")
    if args.fps is not None and args.fps <= 0:
        raise ConfigError("--fps must be > 0")
    w, h = _size(args.size)
    return RawInput(w, h, args.fps or Fraction(25))


def _vault_sealer(args: argparse.Namespace, camera: Camera) -> Callable[[], VaultSealer] | None:
    """Vault (issue 12): what makes the camera's sealer for `--vault` (h264 output only), or None."""
    if not getattr(args, "vault", None):
        return None

    def make() -> VaultSealer:
        from masking.vault.recorder import VaultSealer, configured_by

        return VaultSealer(args.vault, camera.camera_id, configured_by(args.zones))

    return make


def _live(args: argparse.Namespace, camera: Camera) -> tuple[LiveOutputs | None, LiveServer | None]:
    """The live outputs `--http` / `--publish` ask for, and the HTTP server (not started yet)."""
    if not args.http and not args.publish:
        return None, None
    if not 0 < args.keyframe_seconds <= 60:
        raise ConfigError("--keyframe-seconds must lie in (0, 60]")
    bad = [u for u in args.publish if not re.fullmatch(r"rtsps?://[^\s/]+/\S*", u)]
    if bad:
        raise ConfigError(f"--publish: expected rtsp://HOST:PORT/PATH, got {bad[0]!r}")
    hub = server = None
    if args.http:
        from masking.stream.live import LiveHub
        from masking.web.live import LiveServer

        m = re.fullmatch(r"\[?([^\]]*?)\]?:(\d{1,5})", args.http)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ConfigError(f"--http: expected HOST:PORT such as 127.0.0.1:8090, got {args.http!r}")
        hub = LiveHub([camera.camera_id])
        server = LiveServer(hub, m.group(1), int(m.group(2)))
    return LiveOutputs(hub, tuple(args.publish), args.keyframe_seconds), server


def run_filter(args: argparse.Namespace, camera: Camera, style_override: MaskStyle | None = None) -> int:
    """Run one filter on the pipeline; print a summary; 0 ok, 2 failed, 130/143 interrupted."""
    try:
        det = DetectionSpec(detect=args.detect, every=args.detect_every, fail_policy=args.fail_policy,
                            max_latency_ms=args.max_latency)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid detection option ({problems}); "
                          "--detect-every takes 1-30, --max-latency 0-60000 ms") from exc
    camera = apply_detection(camera, det, f"camera {camera.camera_id!r}")
    if not 0.0 <= args.hold_motion <= 0.5:
        raise ConfigError("--hold-motion must lie in [0, 0.5]")
    live, server = _live(args, camera)
    job, kind, spec = filter_job(
        str(args.input), str(args.output), camera, raw=_raw(args), output_format=args.output_format,
        segment_seconds=args.segment_seconds, crf=args.crf, preset=args.preset, hold_motion=args.hold_motion,
        style_override=style_override, sealer=_vault_sealer(args, camera), live=live, realtime=args.pace == "realtime",
    )
    start = time.perf_counter()
    try:
        if server is not None:
            server.start()
            print(f"masking filter: live at {server.url(camera.camera_id)} and "
                  f"{server.url(camera.camera_id, 'index.m3u8')}", file=sys.stderr)
        result, stopped, pipeline = run_job(job, watch=_progress if show_progress() else None)
    finally:
        if server is not None:
            server.stop()
    seconds = time.perf_counter() - start
    out = sys.stderr if args.output == "-" else sys.stdout
    print(_summary(args, kind, spec, camera, result, seconds), file=out)
    if stopped.is_set():
        print(f"masking filter: {_interrupted(args, spec, result, stopped)}", file=sys.stderr)
        return stopped.exit_status
    if result.error:
        print(f"masking filter: error: {result.error}", file=sys.stderr)
        return EXIT_USAGE
    unavailable = [g.unavailable for g in pipeline.groups if g.unavailable]
    if unavailable:
        print(f"masking filter: {unavailable[0]}; every frame was masked by the fail policy", file=sys.stderr)
        return EXIT_USAGE
    if result.stats.corrupt:
        print(f"masking filter: error: {result.stats.corrupt} frame(s) could not be used as decoded (corrupt, or "
              "a size change in a live stream) and were written blacked; see the log for which", file=sys.stderr)
        return EXIT_USAGE
    if result.stats.frames_in == 0:
        print(f"masking filter: error: {args.input}: no frames were read; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    skipped = getattr(job.source, "failures", [])
    if skipped:  # an image folder: the readable images are masked and written, these are not
        for path, why in skipped:
            print(f"masking filter: skipped {path}: {why}", file=sys.stderr)
        print(f"masking filter: {len(skipped)} of {len(skipped) + result.stats.frames_in} images could not be read; "
              "the others were masked and written", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


@contextmanager
def _progress(stats: CameraStats) -> Iterator[None]:
    """A progress bar of frames written, on an interactive terminal (`show_progress`)."""
    from tqdm import tqdm

    bar = tqdm(unit="frames", leave=False)
    done = threading.Event()

    def follow() -> None:
        while not done.wait(0.25):
            bar.update(stats.frames_out - bar.n)

    t = threading.Thread(target=follow, name="progress", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        bar.close()


def _summary(args: argparse.Namespace, kind: InputKind, spec: OutputSpec, camera: Camera, result: CameraResult,
             seconds: float) -> str:
    """The counts line: the short form for static zones into a file of the input's kind (as it has
    always been printed), the full counters otherwise."""
    s = result.stats
    plain = camera.detect is None and spec.segment_seconds is None and spec.format in ("h264", "image", "images") \
        and kind in (InputKind.video, InputKind.image, InputKind.images)
    if plain:
        return (f"masking filter: {kind.value} {args.input} -> {args.output}: {s.frames_in} frames in, "
                f"{s.frames_out} frames out ({seconds:.1f} s)")
    return (f"masking filter: {args.input} -> {args.output} ({spec.format}): {s.frames_in} frames in, {s.frames_out} "
            f"out, {s.dropped} dropped, {s.masked_by_policy} masked by policy, {s.corrupt} corrupt, {s.fps:.1f} fps")


def _interrupted(args: argparse.Namespace, spec: OutputSpec, result: CameraResult, stopped: StopSignal) -> str:
    """What an interrupted run wrote and what it left: complete files only, named."""
    n = result.stats.frames_out
    head = f"interrupted by {stopped.name} after {n} frame(s) were written"
    if spec.format == "rawvideo" and spec.path == "-":
        return f"{head} to stdout"
    kept = result.outputs
    if spec.format in ("jpeg-dir", "image", "images"):
        return f"{head}; {len(kept)} complete file(s) are kept in {args.output}"
    if kept:
        return f"{head}; the unfinished part was removed; finished segment(s) kept: {', '.join(kept)}"
    return f"{head}; the incomplete output was removed: nothing is left under {args.output}"
