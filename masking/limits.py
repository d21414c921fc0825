"""The documented resource limits (docs/errors.md, "Limits"), in one place.

Each limit keeps one input from taking the machine down (memory, time) while staying far above what
real cameras need. Pixel limits can be raised with an environment variable for the rare installation
that needs it; the others are properties of the file formats.
"""

from __future__ import annotations

import os

from masking.errors import ConfigError

CONFIG_MAX_BYTES = 8 * 1024 * 1024  # a zones / serve / manifest YAML file (5,000 zones of 20 points: ~2 MB)
CONFIG_MAX_DEPTH = 64  # nesting of YAML collections (real configs nest 6 deep)
ZONES_PER_CAMERA = 10_000  # zones of one camera
POINTS_PER_RING = 10_000  # points of one polygon ring (exterior or hole)
HOLES_PER_ZONE = 1_000
POINTS_PER_FILE = 2_000_000  # all points of all zones of a zones file

IMAGE_PIXELS_ENV = "MASKING_MAX_IMAGE_PIXELS"
IMAGE_PIXELS_DEFAULT = 1 << 27  # 134 megapixels (16384 x 8192): 400 MB as BGR; a 12K panorama fits


def max_image_pixels() -> int:
    """Largest image (width x height) read: `$MASKING_MAX_IMAGE_PIXELS` or 2^27."""
    raw = os.environ.get(IMAGE_PIXELS_ENV)
    if not raw:
        return IMAGE_PIXELS_DEFAULT
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"${IMAGE_PIXELS_ENV}={raw!r}: expected a whole number of pixels") from exc
    if value < 1:
        raise ConfigError(f"${IMAGE_PIXELS_ENV}={raw!r}: expected a positive number of pixels")
    return value
