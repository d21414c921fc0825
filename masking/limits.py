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


# --------------------------------------------------------------------------- image headers
def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, BMP or WebP file; None when the format
    is not one of these or the header is cut short (the decoder then has the last word)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if data[:2] == b"BM" and len(data) >= 26:
            return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(
                int.from_bytes(data[22:26], "little", signed=True))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except (IndexError, ValueError):
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def check_image_pixels(data: bytes, source: object) -> None:
    """Refuse an image whose header declares more than `max_image_pixels()` pixels, before decoding
    it (a 400 KB PNG can declare 20000 x 20000 pixels: 1.2 GB decoded). `InputError` names it."""
    from masking.errors import InputError

    size = image_size(data)
    if size is None:
        return
    width, height = size
    limit = max_image_pixels()
    if width * height > limit:
        raise InputError(
            f"{source}: image of {width} x {height} pixels ({width * height / 1e6:.0f} megapixels) is over the "
            f"limit of {limit / 1e6:.0f} megapixels (set ${IMAGE_PIXELS_ENV} to raise it)"
        )
