"""`AuditSettings`: every knob of an Art. 7 view audit, with bounds and the reason for its default."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from masking.config.validation import StrictModel, format_validation_error
from masking.errors import ConfigError


class AuditSettings(StrictModel):
    """How an audit gathers evidence and turns it into a verdict.

    Strength of one evidence item = registry weight of its class x detector score. A category's
    strength in a frame combines its items (see `masking.audit.verdict`); a clip's strength is the
    k-th highest frame strength (k = `min_frames`), so one noisy frame cannot decide.

    How the defaults were chosen (rules stated once, then measured; never photo by photo):
    - thresholds: review from strength 0.25 (a weight-0.9 class at the detectors' customary 0.28),
      violation from 0.40 (the same class at 0.45);
    - detectors: two COCO models on the whole view and on 2x2 tiles, where a tile alone must be more
      sure than not (`tile_min_score` 0.5), chosen by measurement among the pairs of registry models;
    - the default verdict is the fusion model (`verdict`): see docs/audit.md for how it was trained
      and measured (benchmarks/audit_quality.py); the thresholds below are the `rule` verdict's.
    """

    model_config = ConfigDict(frozen=False)

    verdict: Literal["fusion", "rule"] = Field(
        "fusion",
        description="How evidence becomes a verdict. `fusion` (default): a logistic model over the object "
        "detector's evidence and the scene models' evidence gives a calibrated P(prohibited place), turned into "
        "a verdict by the thresholds stored with it (masking/models/fusion.json; see docs/audit.md); a view "
        "needs unmasked localised evidence (boxes or segmented regions) to be flagged. `rule`: the earlier "
        "fixed rule (registry weight x detector score; see `masking.audit.verdict`), detectors only.",
    )
    models: list[str] = Field(
        default_factory=lambda: ["yolox-nano"],
        min_length=1,
        description="Object detectors whose detections are evidence. Default: YOLOX-Nano (Apache-2.0) on the "
        "whole view and on 2x2 tiles; the fusion model reads its boxes. AGPL models (yolo11n-int8, "
        "yolov8n-int8) are opt-in: with `verdict: rule` they are evidence as before ([yolox-nano, "
        "yolo11n-int8] was the earlier default: dev precision 0.895, recall 0.895); with the fusion they are "
        "shown as evidence but do not decide.",
    )
    scene_models: list[str] = Field(
        default_factory=lambda: ["deeplabv3-ade20k", "mobilenetv2-imagenet", "mobilenetv1-embedding"],
        description="Scene models (registry task `scenes`, all Apache-2.0) run on every sampled frame for the "
        "fusion verdict: segmentation (class shares, evidence regions), ImageNet scores, embedding. "
        "Ignored by `verdict: rule`.",
    )
    fusion_model: str | None = Field(
        None,
        description="Fusion model file (JSON) written by `masking scenes train`; default: the one shipped "
        "with masking (masking/models/fusion.json, trained on 259 labelled photos, see docs/audit.md).",
    )
    min_region_share: float = Field(
        0.005, ge=0.0, le=0.5,
        description="A segmented region of an evidence class (bed, toilet, shower...) counts as localised "
        "evidence from this share of the view (0.5 %: about 80 cells of the 129x129 class map).",
    )
    min_score: float = Field(
        0.15, ge=0.01, le=0.9,
        description="Detector score below which a box is ignored. Low: weak boxes can still ask for a review.",
    )
    tiles: int = Field(
        2, ge=1, le=4,
        description="Also detect on an n x n grid of overlapping tiles (1 = whole view only). Tiles see small "
        "and distant beds and WCs at twice the resolution (recall 0.79 -> 0.89 with the default models); "
        "what only a tile sees must score `tile_min_score`.",
    )
    tile_min_score: float = Field(
        0.5, ge=0.0, le=1.0,
        description="A box found on a tile counts only from this score (the whole view keeps `min_score`). "
        "Rule: a tile shows a crop without its context, where COCO detectors take desks, counters and "
        "benches for beds at 0.2-0.45; 0.5 asks a tile to be more sure than not, and makes a tile-only "
        "strong object (weight 0.9) a violation by itself (0.9 x 0.5 >= 0.40). Measured, not tuned: on the "
        "dev set any value from 0.35 to 0.5 gives the same verdicts.",
    )
    tile_overlap: float = Field(
        0.2, ge=0.0, le=0.5, description="Overlap between neighbouring tiles, as a share of a tile's side."
    )
    violation_threshold: float = Field(
        0.40, ge=0.05, le=1.0,
        description="Category strength from which the view is a violation (a bed scored 0.45 with weight 0.9).",
    )
    review_threshold: float = Field(
        0.25, ge=0.01, le=1.0,
        description="Category strength from which a human should look (weak or conflicting evidence): a "
        "strong class (weight 0.9) at score 0.28, about the detectors' customary 0.25 minimum.",
    )
    strong_weight: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Classes weighted below this are weak: alone they can ask for a review, never make a "
        "violation (a sink or couch alone); with a strong item of the same kind they add to it.",
    )
    min_item_strength: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Evidence items weaker than this (weight x score) are dropped from the report and the "
        "verdict.",
    )
    same_object_iou: float = Field(
        0.5, ge=0.1, le=0.95,
        description="Boxes of one class from several models or tiles overlapping this much are one object.",
    )
    masked_coverage: float = Field(
        0.8, ge=0.5, le=1.0,
        description="An evidence box counts as masked when privacy_mask/prohibited_view zones cover at "
        "least this share of its area (most of it: a visible sliver is not a view of the place).",
    )
    sample_fps: float = Field(1.0, gt=0.0, le=30.0, description="Frames per second sampled from clips.")
    max_frames: int = Field(
        60, ge=1, le=10000, description="At most this many frames are sampled from a clip (spread evenly)."
    )
    min_frames: int = Field(
        2, ge=1, le=100,
        description="Evidence must persist in at least this many sampled frames (capped at the number "
        "sampled) to make a violation; fewer gives a review.",
    )
    proposal_margin: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Proposed masks grow each evidence box by this share of its size on every side.",
    )
    max_hidden_share: float = Field(
        0.5, gt=0.0, le=1.0,
        description="When the masks would hide more than this share of the view, recommend re-aiming or "
        "moving the camera instead.",
    )

    @model_validator(mode="after")
    def _order(self) -> AuditSettings:
        if self.review_threshold > self.violation_threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must not exceed violation_threshold "
                f"({self.violation_threshold})"
            )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a model twice: {self.models}")
        return self


def settings_from(overrides: dict[str, object], base: AuditSettings | None = None) -> AuditSettings:
    """`base` (default settings) with `overrides` applied and validated; ConfigError on bad values."""
    from pydantic import ValidationError

    data = (base or AuditSettings()).model_dump()
    data.update(overrides)
    try:
        return AuditSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, data, "audit settings", "settings")) from exc
