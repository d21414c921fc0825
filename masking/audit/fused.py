"""`FusedJudge`: one frame's evidence (boxes, segmented regions, scene scores) -> the fusion model's
judgement, with each evidence item's contribution, and the explanation that goes into the JSON.

Per frame: the object detector's evidence items (`masking.audit.evidence`, the fusion's object
model only: other detectors' items are listed but never decide), the segmenter's evidence regions
(`masking.audit.scene_evidence.region_evidence`), the feature vector (`masking.audit.fusion`), P,
and the gate (`masking.audit.verdict.judge_frame`). A source group's contribution (e.g. `seg:bed`)
is shared among that class's unmasked items in proportion to their score (box score, or share of
the view for regions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from masking.audit.coverage import area_share
from masking.audit.evidence import EvidenceMap, frame_evidence
from masking.audit.fusion import IMAGENET_CLASSES, FeatureSpace, FusionModel, ViewInputs
from masking.audit.result import Evidence
from masking.audit.scene_evidence import SceneObservation, overlay_polygons, region_evidence, visible_mask
from masking.audit.settings import AuditSettings
from masking.audit.verdict import FrameJudgement, judge_frame
from masking.detect.detections import Detections
from masking.errors import ConfigError
from masking.models.registry import EvidenceRule, load_registry


def _family_member(names: Sequence[str], family: str) -> str | None:
    reg = load_registry()
    return next((n for n in names if reg.get(n).family == family), None)


def feature_space(object_model: str, scene_models: Sequence[str]) -> tuple[FeatureSpace, str | None]:
    """The features an object detector and scene models give (registry names), and the segmenter."""
    reg = load_registry()
    seg = _family_member(scene_models, "litert-segmentation")
    cls_name = _family_member(scene_models, "litert-classifier")
    seg_names = (reg.get(seg).static_class_names or ()) if seg else ()
    inet_names = (reg.get(cls_name).static_class_names or ()) if cls_name else ()
    rules = tuple(reg.get(seg).evidence) if seg else ()
    return FeatureSpace(tuple(reg.get(object_model).evidence), tuple(seg_names), rules, tuple(inet_names)), seg


@dataclass
class FusedJudge:
    """The fusion model with the feature space of the models it reads."""

    model: FusionModel
    space: FeatureSpace
    segmenter: str | None
    seg_rules: dict[str, EvidenceRule]
    violation: float
    review: float

    @classmethod
    def load(cls, path: str | Path | None, scene_models: Sequence[str]) -> FusedJudge:
        """The fusion model at `path` (default: the shipped one) for the given scene models."""
        model = FusionModel.load(Path(path) if path else None)
        return cls.for_model(model, scene_models)

    @classmethod
    def for_model(cls, model: FusionModel, scene_models: Sequence[str]) -> FusedJudge:
        missing = [m for m in model.scene_models if m not in scene_models]
        if missing:
            raise ConfigError(
                f"the fusion model reads the scene models {model.scene_models}; the audit settings' scene_models "
                f"{list(scene_models)} lack {missing}"
            )
        space, seg = feature_space(model.object_model, scene_models)
        rules = dict(load_registry().get(seg).evidence) if seg else {}
        return cls(model, space, seg, rules, model.violation, model.review)

    def check_detectors(self, names: Sequence[str]) -> None:
        if self.model.object_model not in names:
            raise ConfigError(
                f"the fusion verdict reads the boxes of {self.model.object_model!r}; add it to the audit's models "
                f"(got {list(names)}) or use `verdict: rule`"
            )

    def group_category(self, object_rules: Mapping[str, EvidenceRule]) -> dict[str, str | None]:
        out: dict[str, str | None] = {f"obj:{c}": r.category for c, r in object_rules.items()}
        out.update({f"seg:{c}": r.category for c, r in self.seg_rules.items()})
        out.update({f"inet:{c}": cat for c, cat in IMAGENET_CLASSES.items()})
        return out

    def frame(
        self, outputs: Mapping[str, Detections], emap: EvidenceMap, obs: SceneObservation, size: tuple[int, int],
        masked: BaseGeometry | None, st: AuditSettings, frame: int, time_s: float | None, first_id: int,
    ) -> tuple[list[Evidence], FrameJudgement, dict[str, Any] | None]:
        """Evidence items (ids from `first_id`), the judgement and the overlay of one frame."""
        obj = self.model.object_model
        dets = outputs[obj]
        boxes = frame_evidence({obj: dets}, emap, size, masked, st, frame, time_s)
        others = {m: d for m, d in outputs.items() if m != obj}
        extra = frame_evidence(others, emap, size, masked, st, frame, time_s) if others else []
        regions: list[Evidence] = []
        overlay: dict[str, Any] | None = None
        if obs.labels is not None and self.segmenter is not None:
            vis = visible_mask(obs.labels.shape[:2], masked)
            regions = region_evidence(
                obs.labels, vis, self.seg_rules, self.space.seg_classes, self.segmenter, st.min_region_share,
                st.masked_coverage, frame, size, time_s,
            )
            h, w = obs.labels.shape
            overlay = {
                "model": self.segmenter, "frame": frame, "grid": [w, h],
                "classes": overlay_polygons(obs.labels, self.seg_rules, self.space.seg_classes),
                "categories": {c: r.category for c, r in self.seg_rules.items()},
            }
        x = self.model.vector(self.space.raw(ViewInputs(boxes, dets, size, obs, masked)), obs.embedding)
        logit = float(self.model.logit(x))
        p = float(self.model.proba(x))
        groups = self.model.explain(x)
        items = self._with_contributions(boxes + regions, groups) + extra
        items = [replace(e, id=f"e{first_id + k}") for k, e in enumerate(items)]
        view_masked = area_share(masked) >= st.masked_coverage
        judgement = judge_frame(p, logit, groups, [e for e in items if e.contribution is not None],
                                self.group_category(emap.get(obj, {})), view_masked)
        return items, judgement, overlay

    def _with_contributions(self, items: list[Evidence], groups: Mapping[str, float]) -> list[Evidence]:
        kind = {True: "seg", False: "obj"}
        totals: dict[str, float] = {}
        for e in items:
            if not e.masked:
                g = f"{kind[e.polygon is not None]}:{e.class_name}"
                totals[g] = totals.get(g, 0.0) + e.score
        out: list[Evidence] = []
        for e in items:
            g = f"{kind[e.polygon is not None]}:{e.class_name}"
            share = 0.0 if e.masked or not totals.get(g) else e.score / totals[g]
            out.append(replace(e, contribution=groups.get(g, 0.0) * share))
        out.sort(key=lambda e: -(e.contribution or 0.0))
        return out

    def document(self, frames: list[tuple[int, FrameJudgement]], snapshot_frame: int | None) -> dict[str, Any]:
        """The `fusion` object of the result JSON: P per frame, thresholds, the snapshot frame's
        contributions per source (log-odds, largest first) and the deciding items."""
        snap = next((j for i, j in frames if i == snapshot_frame), frames[0][1])
        info = self.model.info
        return {
            "model": info.get("name", "fusion"),
            "probability": round(snap.p, 4),
            "gated_probability": round(snap.gated, 4),
            "thresholds": {"violation": self.violation, "review": self.review},
            "per_frame": [{"frame": i, "p": round(j.p, 4), "gated": round(j.gated, 4)} for i, j in frames],
            "intercept": round(self.model.intercept, 4),
            "logit": round(snap.logit, 4),
            "contributions": {g: round(c, 4) for g, c in list(snap.groups.items())[:12]},
            "deciding_items": list(snap.items),
            "whole_view": snap.whole_view,
            "masked_only": snap.masked_only,
        }

