"""`masking filter`: mask a camera's static zones in a video, an image or a folder of images."""

from __future__ import annotations

import argparse
import logging

from pydantic import TypeAdapter

from masking.cli import EXIT_OK, show_progress
from masking.cli._filter_stream import add_stream_options, run_stream, wants_engine
from masking.config.zones import Camera, MaskStyle, load_zones
from masking.errors import ConfigError

log = logging.getLogger(__name__)


def style_from_name(name: str | None) -> MaskStyle | None:
    """The default style of a mode name (fill, pixelate, blur), or None."""
    if name is None:
        return None
    return TypeAdapter(MaskStyle).validate_python({"mode": name})


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `filter` sub-command."""
    p = sub.add_parser(
        "filter",
        help="Mask a camera's zones in a video, image or image folder.",
        description="Mask the privacy_mask and prohibited_view zones of one camera in a video file "
        "(H.264 out, every input frame kept with its timestamp), an image, or a folder of images. "
        "The output is written under a temporary name and renamed when complete, so a failed run "
        "never leaves a half-written file. With --detect (or a `detect` section in the zones file) faces "
        "and bodies are masked too, on the streaming engine (concurrent decode/detect/mask/encode, fail "
        "closed); it also reads live streams and raw frames on stdin and writes segments, raw frames on "
        "stdout, or JPEG folders.",
    )
    p.add_argument("input", help="Video file or URL (rtsp://, rtsps://, http://), image, folder of images, "
                   "or `-` for raw frames on stdin (with --input-format rawvideo).")
    p.add_argument("-o", "--output", required=True, help="Output of the same kind: video file, image, or folder; "
                   "`-` for raw frames on stdout (--output-format rawvideo).")
    p.add_argument("--zones", help="Zones YAML file (see `masking zones schema`). May be omitted with --detect: "
                   "then only detections are masked.")
    p.add_argument("--camera", help="Camera id in the zones file; may be omitted when the file holds one camera.")
    p.add_argument(
        "--style", choices=("fill", "pixelate", "blur"),
        help="Override every zone's style with this mode's defaults. Default: each zone's own style "
        "(fill, the irreversible one, unless the file says otherwise).",
    )
    p.add_argument("--crf", type=int, default=20, choices=range(0, 52), metavar="0-51",
                   help="x264 quality for video output (default 20: masks stay crisp, files moderate).")
    p.add_argument("--preset", default="veryfast",
                   help="x264 speed preset (default veryfast: keeps up with real time on a few cores).")
    add_stream_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: load the camera, filter, report the frame counts."""
    from masking.filter import FilterOptions, filter_path

    if args.zones is None:
        if not args.detect:
            raise ConfigError("--zones is required unless --detect is given (e.g. --detect faces)")
        camera = Camera(camera_id="default")
    else:
        camera = load_zones(args.zones).camera(args.camera, source=args.zones)
    if wants_engine(args, camera):
        return run_stream(args, camera, style_from_name(args.style))
    options = FilterOptions(
        style_override=style_from_name(args.style), crf=args.crf, preset=args.preset, progress=show_progress()
    )
    stats = filter_path(args.input, args.output, camera, options)
    print(
        f"masking filter: {stats.kind} {args.input} -> {args.output}: {stats.frames_in} frames in, "
        f"{stats.frames_out} frames out ({stats.seconds:.1f} s)"
    )
    return EXIT_OK
