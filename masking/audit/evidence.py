"""Turn detections into Art. 7 evidence, through the declarative map in the model registry.

Each model's `evidence:` block maps a class name to an `EvidenceRule(category, weight, several,
several_min)`. Classes without a rule (persons, faces, chairs...) are never evidence. One object
seen by several models or tiles counts once (same class, IoU >= `same_object_iou`, best kept).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from masking.audit.coverage import box_coverage
from masking.audit.result import Evidence
from masking.audit.settings import AuditSettings
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.errors import ConfigError
from masking.models.registry import EvidenceRule, load_registry

EvidenceMap = Mapping[str, Mapping[str, EvidenceRule]]


def evidence_map(models: list[str]) -> dict[str, dict[str, EvidenceRule]]:
    """The registry's evidence rules of each model; ConfigError when a model maps no class at all
    (it could never produce evidence, which is almost certainly a mistake in the settings)."""
    reg = load_registry()
    out: dict[str, dict[str, EvidenceRule]] = {}
    for name in models:
        entry = reg.get(name)
        if not entry.evidence:
            raise ConfigError(
                f"model {name!r} has no `evidence:` block in the model registry, so it cannot give Art. 7 "
                "evidence; map its classes there (see README, 'Audit: evidence map') or drop it from models"
            )
        out[name] = dict(entry.evidence)
    return out


def _not_contained(xyxy: npt.NDArray[np.float32], cls: npt.NDArray[np.integer], share: float = 0.7) -> npt.NDArray[np.bool_]:
    """Keep-mask over boxes ranked best first: drop a box lying mostly (>= `share` of its area) inside
    a better kept box of its class (a tile's cut-off view of an object the whole view also saw)."""
    n = xyxy.shape[0]
    keep = np.ones(n, bool)
    if n < 2:
        return keep
    lt = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    inside = (inter >= share * np.maximum(area, 1e-6)[:, None]) & (cls[:, None] == cls[None, :])
    for i in range(1, n):  # n is a handful of evidence boxes
        keep[i] = not np.any(inside[i, :i] & keep[:i])
    return keep


def _stacked(xyxy: npt.NDArray[np.float32]) -> bool:
    """Whether two boxes sit one above the other (bunk beds): they share most of their width and
    their vertical centres differ by at least half the smaller height."""
    if xyxy.shape[0] < 2:
        return False
    x1, y1, x2, y2 = (xyxy[:, i] for i in range(4))
    w = x2 - x1
    h = y2 - y1
    overlap_x = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    share_x = overlap_x / np.maximum(np.minimum(w[:, None], w[None]), 1e-6)
    dy = np.abs((y1 + y2)[:, None] - (y1 + y2)[None]) * 0.5
    apart = dy >= 0.5 * np.minimum(h[:, None], h[None])
    pair = (share_x >= 0.5) & apart
    np.fill_diagonal(pair, False)
    return bool(pair.any())


def frame_evidence(
    outputs: Mapping[str, Detections],
    emap: EvidenceMap,
    size: tuple[int, int],
    masked: BaseGeometry | None,
    settings: AuditSettings,
    frame: int,
    time_s: float | None = None,
) -> list[Evidence]:
    """The evidence in one frame: `outputs` maps model name -> its detections (frame pixels),
    `size` is (width, height), `masked` the union of masked zones (normalised)."""
    width, height = size
    boxes: list[npt.NDArray[np.float32]] = []
    scores: list[npt.NDArray[np.float32]] = []
    names: list[npt.NDArray[np.str_]] = []
    models: list[str] = []
    for model, dets in outputs.items():
        rules = emap.get(model, {})
        if not len(dets) or not rules:
            continue
        cls = dets.names
        keep = np.isin(cls, list(rules)) & (dets.confidence >= settings.min_score)
        if not keep.any():
            continue
        boxes.append(dets.xyxy[keep])
        scores.append(dets.confidence[keep])
        names.append(cls[keep])
        models += [model] * int(keep.sum())
    if not boxes:
        return []
    xyxy = np.concatenate(boxes)
    score = np.concatenate(scores)
    cls = np.concatenate(names)
    model_arr = np.asarray(models, dtype=object)
    rule_list = [emap[m][c] for m, c in zip(model_arr, cls)]
    weight = np.array([r.weight for r in rule_list], np.float32)
    strength = weight * score
    ok = strength >= settings.min_item_strength
    # one object seen by several models/tiles counts once: class-aware NMS ranked by strength
    _, class_idx = np.unique(cls, return_inverse=True)
    keep_idx = nms(xyxy, np.where(ok, strength, -1.0), settings.same_object_iou, class_ids=class_idx)
    keep_idx = keep_idx[ok[keep_idx]]
    keep_idx = keep_idx[_not_contained(xyxy[keep_idx], class_idx[keep_idx])]
    xyxy, score, cls, model_arr = xyxy[keep_idx], score[keep_idx], cls[keep_idx], model_arr[keep_idx]
    weight, strength = weight[keep_idx], strength[keep_idx]
    rule_list = [rule_list[i] for i in keep_idx]
    scale = np.array([width, height, width, height], np.float32)
    norm = np.clip(xyxy / scale, 0.0, 1.0)
    cover = box_coverage(norm, masked)
    category = [r.category for r in rule_list]
    for name in np.unique(cls):
        sel = np.nonzero(cls == name)[0]
        several = [rule_list[i] for i in sel if rule_list[i].several is not None]
        if not several:
            continue
        rule = several[0]
        if len(sel) >= rule.several_min or _stacked(xyxy[sel]):
            for i in sel:
                if rule_list[i].several is not None:
                    category[i] = rule_list[i].several  # type: ignore[assignment]
    items: list[Evidence] = []
    order = np.argsort(-strength, kind="stable")
    for i in order:
        items.append(
            Evidence(
                id="",
                class_name=str(cls[i]),
                model=str(model_arr[i]),
                category=str(category[i]),
                score=float(score[i]),
                weight=float(weight[i]),
                strength=float(strength[i]),
                strong=bool(weight[i] >= settings.strong_weight),
                xyxy=tuple(float(v) for v in xyxy[i]),  # type: ignore[arg-type]
                xyxy_norm=tuple(float(v) for v in norm[i]),  # type: ignore[arg-type]
                masked=bool(cover[i] >= settings.masked_coverage),
                masked_share=float(cover[i]),
                frame=frame,
                time_s=time_s,
            )
        )
    return items
