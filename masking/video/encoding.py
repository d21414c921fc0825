"""Encoder settings for masked recordings: the preset names and the libx264 options they stand for.

x264's own presets, and `ingest` (the default): x264 superfast with veryfast's macroblock-tree
rate control, 10-frame look-ahead and partitions. superfast alone drops the macroblock tree, which
on still CCTV scenes doubles the size at the same crf. Measured with `benchmarks/encoder.py` (crf
20, one encoder thread): office_v001 (720p) 7.9 ms per frame against veryfast's 12.5, the same
size (7.9 against 8.0 kB per frame) at -0.17 dB Y-PSNR; entrance_v002 (360p) 2.5 against 3.6 ms,
+14% size, -0.19 dB. The look-ahead holds 10 frames (0.4 s at 25 fps) in the encoder, as veryfast.
"""

from __future__ import annotations

from masking.errors import OutputError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
INGEST_PRESET = "ingest"
ENCODER_PRESETS = (INGEST_PRESET, *X264_PRESETS)
DEFAULT_PRESET = INGEST_PRESET
INGEST_X264 = {"preset": "superfast", "x264-params": "mbtree=1:rc-lookahead=10:partitions=i8x8,i4x4,p8x8,b8x8"}


def encoder_options(codec: str, preset: str, crf: int) -> dict[str, str]:
    """The libx264 / libx265 options for `preset` (one of `ENCODER_PRESETS`) and `crf`."""
    if preset not in ENCODER_PRESETS:
        raise OutputError(f"encoder preset {preset!r} is not one of: {', '.join(ENCODER_PRESETS)}")
    if preset != INGEST_PRESET:
        return {"crf": str(crf), "preset": preset}
    if codec == "libx264":
        return {"crf": str(crf), **INGEST_X264}
    return {"crf": str(crf), "preset": "superfast"}
