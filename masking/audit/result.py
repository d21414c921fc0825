"""What an audit produces: evidence items, proposed masks and the per-input result (and its JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1

Verdict = Literal["violation", "review", "compliant"]
Recommendation = Literal["none", "add-masks", "re-aim", "inspect"]

@dataclass(frozen=True)
class AuditFrame:
    """One frame to audit: a BGR uint8 image, its index in the input, its time in seconds (clips)."""

    image: npt.NDArray[np.uint8]
    index: int
    time_s: float | None = None


@dataclass(frozen=True)
class Evidence:
    """One detection that counts as Art. 7 evidence.

    `strength` = `weight` x `score`. `masked` when privacy_mask/prohibited_view zones cover at least
    `AuditSettings.masked_coverage` of the box (`masked_share` is the covered share).
    """

    id: str
    class_name: str
    model: str
    category: str
    score: float
    weight: float
    strength: float
    strong: bool
    xyxy: tuple[float, float, float, float]
    xyxy_norm: tuple[float, float, float, float]
    masked: bool
    masked_share: float
    frame: int
    time_s: float | None = None
    polygon: list[list[float]] | None = None  # a segmented region's outline (normalised), else None
    contribution: float | None = None  # the item's share of the fused verdict's log-odds (fusion)

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.polygon is not None:
            extra["polygon"] = [list(p) for p in self.polygon]
        if self.contribution is not None:
            extra["contribution"] = round(self.contribution, 4)
        return {
            "id": self.id,
            "class_name": self.class_name,
            "model": self.model,
            "category": self.category,
            "score": round(self.score, 4),
            "weight": round(self.weight, 4),
            "strength": round(self.strength, 4),
            "strong": self.strong,
            "xyxy": [round(v, 1) for v in self.xyxy],
            "xyxy_norm": [round(v, 5) for v in self.xyxy_norm],
            "masked": self.masked,
            "masked_share": round(self.masked_share, 4),
            "frame": self.frame,
            "time_s": None if self.time_s is None else round(self.time_s, 3),
            **extra,
        }


@dataclass(frozen=True)
class ProposedMask:
    """A privacy mask that would hide some evidence: a simple polygon in normalised coordinates."""

    id: str
    polygon: list[list[float]]
    covers: list[str]
    area_share: float

    def as_zone(self) -> dict[str, Any]:
        """The mask as a zones-file zone (`kind: privacy_mask`), ready to paste under a camera."""
        return {"id": self.id, "kind": "privacy_mask", "polygon": [list(p) for p in self.polygon]}

    def to_dict(self) -> dict[str, Any]:
        return {**self.as_zone(), "covers": list(self.covers), "area_share": round(self.area_share, 4)}


def zones_snippet(masks: list[dict[str, Any]]) -> str:
    """Proposed masks (`ProposedMask.to_dict()` objects) as a `zones:` YAML block to paste under a
    camera in its zones file: one privacy_mask zone each, polygon on one line."""
    lines = ["zones:"]
    for m in masks:
        lines += [f"  - id: {m['id']}", "    kind: privacy_mask", f"    polygon: {json.dumps(m['polygon'])}"]
    return "\n".join(lines)


@dataclass
class AuditResult:
    """The audit of one input (image or clip) against one camera's zones.

    `confidence`: for violation/review the (persistent) strength of the deciding category (fusion:
    the calibrated P(prohibited place)), for compliant 1 minus it. `fusion`: with the fused verdict,
    P per sampled frame, the thresholds and the contributions (log-odds) of each source in the
    snapshot frame; `segmentation`: the segmenter's evidence classes in the snapshot frame as
    outlines (normalised polygons per class), for a coarse overlay without pixels of the view. `hidden_share`: the share of the view
    hidden once the proposed masks are added to the camera's masked zones. `snapshot` is the frame
    shown in reports (the one with the strongest evidence); it is not part of the JSON.
    """

    input: str
    camera_id: str | None
    verdict: Verdict
    category: str | None
    confidence: float
    article: str
    evidence: list[Evidence]
    proposed_masks: list[ProposedMask]
    hidden_share: float
    recommendation: Recommendation
    frames_sampled: int
    evidence_frames: list[int]
    category_strengths: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    reason: str = ""
    snapshot: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    snapshot_frame: int | None = None
    fusion: dict[str, Any] | None = None  # the fused verdict's explanation (see `fusion_explanation`)
    segmentation: dict[str, Any] | None = None  # coarse overlay of the snapshot frame (see `overlay`)

    @property
    def masked_evidence(self) -> list[Evidence]:
        return [e for e in self.evidence if e.masked]

    @property
    def unmasked_evidence(self) -> list[Evidence]:
        return [e for e in self.evidence if not e.masked]

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        cat = self.category or "-"
        extra = ""
        if self.proposed_masks:
            extra = f", {len(self.proposed_masks)} mask(s) proposed hiding {self.hidden_share:.0%}"
        return (
            f"{self.input}: {self.verdict.upper()} {cat} (confidence {self.confidence:.2f}; "
            f"{len(self.unmasked_evidence)} unmasked / {len(self.masked_evidence)} masked evidence in "
            f"{self.frames_sampled} frame(s){extra}; recommendation: {self.recommendation})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The documented per-input JSON object (see README, "Audit JSON")."""
        return {
            "input": self.input,
            "camera_id": self.camera_id,
            "verdict": self.verdict,
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "article": self.article,
            "reason": self.reason,
            "recommendation": self.recommendation,
            "hidden_share": round(self.hidden_share, 4),
            "frames_sampled": self.frames_sampled,
            "evidence_frames": list(self.evidence_frames),
            "category_strengths": {k: round(v, 4) for k, v in sorted(self.category_strengths.items())},
            "models": list(self.models),
            "evidence": [e.to_dict() for e in self.evidence],
            "proposed_masks": [m.to_dict() for m in self.proposed_masks],
            **({"fusion": self.fusion} if self.fusion is not None else {}),
            **({"segmentation": self.segmentation} if self.segmentation is not None else {}),
        }


def audit_json_document(
    results: list[AuditResult],
    settings: dict[str, Any],
    zones_file: str | None,
    failures: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The whole `--json` document: schema version, settings used, one object per audited input,
    and `failures`: `{"input", "error"}` of each input that could not be audited."""
    return {
        "schema_version": SCHEMA_VERSION,
        "zones_file": zones_file,
        "settings": settings,
        "results": [r.to_dict() for r in results],
        "failures": list(failures or []),
    }
