"""`masking filter`: mask a camera's static zones in a video, an image or a folder of images."""

from __future__ import annotations

import argparse
import logging

from pydantic import TypeAdapter

from masking.cli._filter_stream import add_stream_options, run_filter
from masking.config.zones import Camera, MaskStyle, load_zones
from masking.errors import ConfigError
from masking.paths import expand_inputs, refuse_overwrite
from masking.video.encoding import DEFAULT_PRESET, ENCODER_PRESETS

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
        "The output is written under a temporary name and renamed when complete, so a failed or "
        "interrupted run (exit 2, or 130/143 on SIGINT/SIGTERM) never leaves a half-written file, and a "
        "second run writing the same output is refused. With --detect (or a `detect` section in the zones "
        "file) faces and bodies are masked too (concurrent decode/detect/mask/encode, fail closed). It "
        "also reads live streams and raw frames on stdin and writes segments, raw frames on stdout, or "
        "JPEG folders. Video stored sideways (a rotation display matrix) is masked and written upright.",
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
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=ENCODER_PRESETS,
                   help="Encoder preset for video output (default ingest: x264 superfast with veryfast's rate "
                   "control, veryfast's file size for 60%% of its CPU; or any x264 preset).")
    add_stream_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: load the camera (or a zone-less one with --detect), run the filter, report the counts."""
    refuse_overwrite(expand_inputs([args.output]),
                     expand_inputs([args.input, *([args.zones] if args.zones is not None else [])]))
    if args.zones is None:
        if not args.detect:
            raise ConfigError("--zones is required unless --detect is given (e.g. --detect faces)")
        camera = Camera(camera_id="default")
    else:
        camera = load_zones(args.zones).camera(args.camera, source=args.zones)
    return run_filter(args, camera, style_from_name(args.style))
