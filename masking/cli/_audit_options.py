"""Options shared by `masking audit` and `masking rescan` (one definition): audit settings, reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from masking.errors import ConfigError

_FIELDS = ("models", "sample_fps", "max_frames", "tiles", "verdict", "scene_models", "fusion_model")


def add_audit_settings_options(p: argparse.ArgumentParser) -> None:
    """Add --settings, --models, --sample-fps, --max-frames and --tiles."""
    p.add_argument(
        "--settings", type=Path, metavar="FILE",
        help="YAML with AuditSettings fields (thresholds, models, sampling...); the flags below override it.",
    )
    p.add_argument(
        "--models", nargs="+", metavar="MODEL",
        help="Object detectors (default yolox-nano, Apache-2.0). AGPL models are opt-in: with --verdict rule, "
        "--models yolox-nano yolo11n-int8 is the earlier default pair (add `scenes` for a trained scene head).",
    )
    p.add_argument(
        "--verdict", choices=("fusion", "rule"),
        help="fusion (default): calibrated P(prohibited place) from the detector's boxes and the scene models "
        "(segmentation, ImageNet, embedding); rule: the earlier fixed rule on detector scores only.",
    )
    p.add_argument(
        "--scene-models", nargs="+", metavar="MODEL",
        help="Scene models for the fusion verdict (default deeplabv3-ade20k mobilenetv2-imagenet "
        "mobilenetv1-embedding, all Apache-2.0).",
    )
    p.add_argument(
        "--fusion-model", metavar="FILE",
        help="A fusion model written by `masking scenes train` (default: the one shipped with masking).",
    )
    p.add_argument(
        "--sample-fps", type=float, metavar="FPS",
        help="Frames per second sampled from clips and streams (default 1: rooms do not move).",
    )
    p.add_argument(
        "--max-frames", type=int, metavar="N", help="At most N frames per clip (default 60, spread evenly)."
    )
    p.add_argument(
        "--tiles", type=int, metavar="N",
        help="Also detect on an N x N tile grid (default 2: finds small and distant beds; what only a tile "
        "sees must score 0.5, see AuditSettings.tile_min_score; 1: whole view only, about 3x faster).",
    )


def add_report_options(p: argparse.ArgumentParser) -> None:
    """Add --lang and --show-unmasked (the HTML report's language and pictures)."""
    from masking.i18n import DEFAULT_LANGUAGE, LANGUAGES

    p.add_argument(
        "--lang", choices=LANGUAGES, default=DEFAULT_LANGUAGE,
        help="Language of the HTML report: en (English, default) or zh (Simplified Chinese; the Art. 7 text "
        "in its original Chinese).",
    )
    p.add_argument(
        "--show-unmasked", action="store_true",
        help="Show report pictures as the camera sees them. Default: the camera's privacy_mask and "
        "prohibited_view zones masked as recorded and faces blurred (the whole picture blurred if the "
        "face model is not installed).",
    )


def audit_settings_from_args(args: argparse.Namespace) -> Any:
    """`AuditSettings` from --settings FILE overridden by the flags (validated; ConfigError if bad)."""
    from masking.audit import settings_from
    from masking.config.yamlio import load_yaml

    base: dict[str, Any] = {}
    if args.settings is not None:
        raw = load_yaml(args.settings)
        if not isinstance(raw, dict):
            raise ConfigError(f"{args.settings}: expected a mapping of AuditSettings fields")
        base.update(raw)
    for key in _FIELDS:
        value = getattr(args, key)
        if value is not None:
            base[key] = value
    return settings_from(base)
