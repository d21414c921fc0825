"""The streaming options of `masking filter` and the handler that runs them on the engine.

`masking/cli/filter.py` adds these options with `add_stream_options(parser)` and hands a run to
`run_stream(args, camera)` when `wants_engine(args, camera)` says so: detection, segments, raw or
JPEG output, raw stdin input or a live URL. Static masking of a video file into one H.264 file
stays on `masking.filter.filter_video` (the same masks, planar and conversion-free).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from fractions import Fraction
from pathlib import Path

from pydantic import ValidationError

from masking.config.zones import Camera, MaskStyle
from masking.errors import ConfigError, InputError, OutputError
from masking.stream.build import sink_layouts, stop_on_signals
from masking.stream.config import DetectionSpec, apply_detection
from masking.stream.engine import CameraJob, Engine, EngineOptions, SinkFactory
from masking.stream.sinks import H264Sink, JpegDirSink, RawSink, Sink
from masking.stream.sources import (
    LIVE_SCHEMES,
    FileSource,
    RawSource,
    ReconnectPolicy,
    Source,
    SourceInfo,
    StreamSource,
)

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
    o.add_argument("--pix-fmt", choices=("bgr24",), help="Raw input pixel format (bgr24).")
    o.add_argument("--fps", type=Fraction, default=None, metavar="RATE",
                   help="Raw input frame rate, sets the timestamps (default 25).")


def wants_engine(args: argparse.Namespace, camera: Camera) -> bool:
    """Whether this run needs the streaming engine rather than the static file filter."""
    return bool(
        args.detect or camera.detect is not None or args.segment_seconds or args.output_format not in (None, "h264")
        or args.input_format or args.input == "-" or args.output == "-" or str(args.input).startswith(LIVE_SCHEMES)
        or args.detect_every or args.fail_policy or args.max_latency
    )


def _size(text: str | None) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text or "")
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"--size: expected WxH such as 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _source(args: argparse.Namespace) -> Source:
    if args.input_format == "rawvideo":
        if args.pix_fmt != "bgr24":
            raise ConfigError("--input-format rawvideo needs --pix-fmt bgr24")
        w, h = _size(args.size)
        fps = args.fps or Fraction(25)
        if args.input == "-":
            return RawSource(sys.stdin.buffer, w, h, fps, name="stdin")
        path = Path(args.input)
        if not path.is_file():
            raise InputError(f"{path}: no such raw video file")
        return RawSource(path.open("rb"), w, h, fps, name=str(path), owns_stream=True)
    if args.input == "-":
        raise ConfigError("reading stdin needs --input-format rawvideo --size WxH --pix-fmt bgr24")
    if str(args.input).startswith(LIVE_SCHEMES):
        # A filter ends (closing its output cleanly) once the stream is gone for 30 s; `serve` retries forever.
        return StreamSource(args.input, reconnect=ReconnectPolicy(give_up_after_s=30.0))
    return FileSource(args.input)


def _sink(args: argparse.Namespace, fmt: str) -> tuple[SinkFactory, tuple[str, ...]]:
    out = args.output
    if fmt == "rawvideo":
        if args.segment_seconds:
            raise ConfigError("--segment-seconds applies to h264 output only")

        def raw(info: SourceInfo) -> Sink:
            if out == "-":
                return RawSink(sys.stdout.buffer, "stdout")
            try:
                return RawSink(Path(out).open("wb"), out, owns_stream=True)
            except OSError as exc:
                raise OutputError(f"{out}: cannot create raw output: {exc}") from exc

        return raw, ("bgr24",)
    if out == "-":
        raise ConfigError("writing stdout needs --output-format rawvideo")
    if fmt == "jpeg-dir":
        if args.segment_seconds:
            raise ConfigError("--segment-seconds applies to h264 output only")
        return (lambda info: JpegDirSink(out)), ("bgr24",)
    return (lambda info: H264Sink(out, info, segment_seconds=args.segment_seconds,
                                  crf=args.crf, preset=args.preset)), sink_layouts("h264")


def _image_kind(args: argparse.Namespace) -> str | None:
    """"image" or "folder" when the input is an image or an image folder, else None (video)."""
    if args.input == "-" or args.input_format or str(args.input).startswith(LIVE_SCHEMES):
        return None
    from masking.filter import input_kind

    kind = input_kind(args.input)
    return kind if kind in ("image", "folder") else None


def _run_images(args: argparse.Namespace, camera: Camera, kind: str, style_override: MaskStyle | None) -> int:
    """Images with detection: every image gets its zones and its own detections; a detector that
    fails or is missing stops the run (exit 2) before anything unmasked is written."""
    from masking.detect.dynamic import DynamicMasks
    from masking.masks.apply import ZoneMasker
    from masking.video.images import list_images, read_image, write_image

    if args.segment_seconds or args.output_format or args.input_format or args.output == "-":
        raise ConfigError("--segment-seconds, --output-format and raw I/O apply to video input only")
    masker = ZoneMasker(camera, style_override)
    dyn = DynamicMasks(camera, threads=1)
    src, out = Path(args.input), Path(args.output)
    pairs = [(p, out / p.name) for p in list_images(src)] if kind == "folder" else [(src, out)]
    if not pairs:
        raise InputError(f"{src}: folder holds no images")
    for a, b in pairs:
        image = read_image(a)
        boxes = dyn.detect(image)[0]
        masker.apply(image)
        masker.apply_boxes(image, boxes)
        write_image(b, image)
    print(f"masking filter: {kind} {args.input} -> {args.output}: {len(pairs)} images in, {len(pairs)} out "
          f"(zones and detections masked)")
    return 0


def run_stream(args: argparse.Namespace, camera: Camera, style_override: MaskStyle | None = None) -> int:
    """Run one camera through the engine; print a summary; 0 ok, 2 if the run failed."""
    try:
        det = DetectionSpec(detect=args.detect, every=args.detect_every, fail_policy=args.fail_policy,
                            max_latency_ms=args.max_latency)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid detection option ({problems}); "
                          "--detect-every takes 1-30, --max-latency 0-60000 ms") from exc
    camera = apply_detection(camera, det, f"camera {camera.camera_id!r}")
    kind = _image_kind(args)
    if kind is not None:
        return _run_images(args, camera, kind, style_override)
    fmt = args.output_format or ("rawvideo" if args.output == "-" else "h264")
    if args.segment_seconds is not None and args.segment_seconds <= 0:
        raise ConfigError("--segment-seconds must be > 0")
    if args.fps is not None and args.fps <= 0:
        raise ConfigError("--fps must be > 0")
    if not 0.0 <= args.hold_motion <= 0.5:
        raise ConfigError("--hold-motion must lie in [0, 0.5]")
    make_sink, layouts = _sink(args, fmt)
    source = _source(args)
    job = CameraJob(camera.camera_id, camera, source, make_sink, hold_motion=args.hold_motion,
                    style_override=style_override, sink_layouts=layouts, abort_on_error=not source.live)
    engine = Engine([job], EngineOptions(stats_interval_s=10.0))
    with stop_on_signals(engine):
        (result,) = engine.run()
    s = result.stats
    out = sys.stderr if args.output == "-" else sys.stdout
    print(
        f"masking filter: {args.input} -> {args.output} ({fmt}): {s.frames_in} frames in, {s.frames_out} out, "
        f"{s.dropped} dropped, {s.masked_by_policy} masked by policy, {s.corrupt} corrupt, {s.fps:.1f} fps",
        file=out,
    )
    if result.error:
        print(f"masking filter: error: {result.error}", file=sys.stderr)
        return 2
    unavailable = [g.unavailable for g in engine.groups.values() if g.unavailable]
    if unavailable:
        print(f"masking filter: {unavailable[0]}; every frame was masked by the fail policy", file=sys.stderr)
        return 2
    return 0
