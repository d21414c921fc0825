"""`AuditSettings`: every knob of an Art. 7 view audit, with bounds and the reason for its default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from masking.errors import ConfigError


class AuditSettings(BaseModel):
    """How an audit gathers evidence and turns it into a verdict.

    Strength of one evidence item = registry weight of its class x detector score. A category's
    strength in a frame combines its items (see `masking.audit.verdict`); a clip's strength is the
    k-th highest frame strength (k = `min_frames`), so one noisy frame cannot decide.
    """

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(
        default_factory=lambda: ["yolox-nano", "yolov8n-int8"],
        min_length=1,
        description="Registry models whose detections are evidence. Default: YOLOX-Nano + YOLOv8n-int8 on "
        "the whole view, the best detector-only pair on the dev set (precision 0.94, recall 0.84; YOLOX-Nano "
        "alone 0.96/0.71, with 2x2 tiles 0.87/0.84; + YOLO11n or NudeNet: no better). With a trained scene "
        "classifier use [yolox-nano, scenes] (cross-validated, mean of 3 seeds: 0.84/0.92). See "
        "benchmarks/audit_quality.py.",
    )
    min_score: float = Field(
        0.15, ge=0.01, le=0.9,
        description="Detector score below which a box is ignored. Low: weak boxes can still ask for a review.",
    )
    tiles: int = Field(
        1, ge=1, le=4,
        description="Also detect on an n x n grid of overlapping tiles (1 = whole view only). Tiles find small "
        "and distant beds (YOLOX-Nano alone: recall 0.71 -> 0.84) but also false beds (precision 0.96 -> "
        "0.87); the default models find those rooms without tiles.",
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
        msgs = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid audit settings: {msgs}") from exc
