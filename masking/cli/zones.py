"""`masking zones`: check a zones file, draw its zones on a snapshot, print the JSON Schema."""

from __future__ import annotations

import argparse
import json

from shapely.ops import unary_union

from masking.annotate import draw_zones
from masking.cli import EXIT_OK
from masking.config.zones import ZonesFile, json_schema, load_zones
from masking.paths import refuse_overwrite
from masking.video.images import read_image, write_image


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `zones` sub-command with `check`, `draw` and `schema`."""
    p = sub.add_parser("zones", help="Check, draw or describe zones files.",
                       description="Work with zones files (cameras, their zones and mask styles).")
    zsub = p.add_subparsers(dest="zones_command", metavar="ACTION", required=True)

    check = zsub.add_parser("check", help="Validate a zones file and print a summary.",
                            description="Validate a zones file; print cameras, zones, kinds, styles and "
                            "the share of the frame each zone covers. Exit 2 with the reasons if invalid.")
    check.add_argument("file", help="Zones YAML file.")
    check.set_defaults(handler=run_check)

    draw = zsub.add_parser("draw", help="Draw a camera's zones on a snapshot.",
                           description="Draw the zones of one camera on a snapshot, labelled with id and "
                           "kind, coloured by kind (red prohibited_view, blue privacy_mask, yellow watch, "
                           "holes dashed), to check them by eye before deployment.")
    draw.add_argument("image", help="Snapshot of the camera's view.")
    draw.add_argument("--zones", required=True, help="Zones YAML file.")
    draw.add_argument("--camera", help="Camera id; may be omitted when the file holds one camera.")
    draw.add_argument("-o", "--output", required=True, help="Preview image to write (.png, .jpg).")
    draw.set_defaults(handler=run_draw)

    schema = zsub.add_parser("schema", help="Print the JSON Schema of zones files.",
                             description="Print the JSON Schema of the zones file format (for editors and CI).")
    schema.set_defaults(handler=run_schema)


def summary(zones: ZonesFile) -> list[str]:
    """Human-readable lines describing a valid zones file."""
    lines = [f"{len(zones.cameras)} camera(s)"]
    for cam in zones.cameras:
        masked = [z.polygon.shapely() for z in cam.zones if z.masked]
        share = unary_union(masked).area if masked else 0.0
        detect = f", {len(cam.detect.detectors)} detector(s)" if cam.detect else ""
        site = f" ({cam.site})" if cam.site else ""
        lines.append(f"camera {cam.camera_id}{site}: {len(cam.zones)} zone(s), {share:.1%} of the frame masked{detect}")
        for z in cam.zones:
            holes = f", {len(z.polygon.holes)} hole(s)" if z.polygon.holes else ""
            lines.append(
                f"  {z.id:<24} {z.kind.value:<16} {z.style.mode:<9} {z.polygon.shapely().area:6.1%} of frame{holes}"
            )
    return lines


def run_check(args: argparse.Namespace) -> int:
    zones = load_zones(args.file)
    print(f"{args.file}: valid")
    print("\n".join(summary(zones)))
    return EXIT_OK


def run_draw(args: argparse.Namespace) -> int:
    refuse_overwrite([args.output], [args.image, args.zones])
    camera = load_zones(args.zones).camera(args.camera, source=args.zones)
    preview = draw_zones(read_image(args.image), camera)
    write_image(args.output, preview)
    print(f"masking zones draw: {len(camera.zones)} zone(s) of {camera.camera_id} -> {args.output}")
    return EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK
