"""Verdict rules: evidence per frame -> category strengths -> a verdict for the whole input.

Per frame, unmasked evidence is grouped into two kinds of place: sleeping places (guest_room,
dormitory) and wet rooms (bathroom, toilet, shower, changing_room). A kind's strength is the
noisy-OR of its distinct items, 1 - prod(1 - strength_i), when at least one item is strong
(weight >= strong_weight); with weak items only it is the strongest weak item, and it can ask for a
review but never make a violation (a sink or a couch alone).

Over time (clips), a kind's strength is the k-th highest of its per-frame strengths, k =
min(min_frames, frames sampled): evidence must persist in k frames, so one noisy frame does not
decide. Then:
  violation  persistent strong strength >= violation_threshold;
  review     persistent strength >= review_threshold (weak evidence), or strong evidence that
             reached violation_threshold in fewer than k frames (conflicting evidence);
  compliant  otherwise. Masked evidence never counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from masking.art7 import kind_of
from masking.audit.result import Evidence, Verdict
from masking.audit.settings import AuditSettings

_PRIORITY = {"dormitory": 1}  # a dormitory item names the place over a single-bed guest room


@dataclass(frozen=True)
class KindScore:
    """One kind of place in one frame."""

    strength: float
    strong: bool
    category: str


def frame_scores(items: list[Evidence], settings: AuditSettings) -> dict[str, KindScore]:
    """Strength of each kind of place in one frame, from its unmasked evidence."""
    out: dict[str, KindScore] = {}
    groups: dict[str, list[Evidence]] = {}
    for e in items:
        if not e.masked:
            groups.setdefault(kind_of(e.category), []).append(e)
    for kind, group in groups.items():
        s = np.array([e.strength for e in group], np.float64)
        strong = any(e.strong for e in group)
        value = float(1.0 - np.prod(1.0 - s)) if strong else float(s.max())
        named = [e for e in group if e.strong] or group
        top = max(named, key=lambda e: (_PRIORITY.get(e.category, 0), e.strength))
        out[kind] = KindScore(value, strong, top.category)
    return out


@dataclass
class Decision:
    """The aggregated decision for one input."""

    verdict: Verdict
    category: str | None
    confidence: float
    kinds: list[str] = field(default_factory=list)  # kinds that made the verdict (violation or review)
    evidence_frames: list[int] = field(default_factory=list)
    strengths: dict[str, float] = field(default_factory=dict)  # persistent strength per category
    reason: str = ""


def _kth(values: np.ndarray, k: int) -> float:
    if values.size == 0:
        return 0.0
    k = min(k, values.size)
    return float(np.sort(values)[::-1][k - 1])


def decide(per_frame: list[tuple[int, dict[str, KindScore]]], settings: AuditSettings) -> Decision:
    """Aggregate frame scores `(frame index, scores)` over the sampled frames into a verdict."""
    n = len(per_frame)
    k = max(1, min(settings.min_frames, n))
    kinds = sorted({kind for _, scores in per_frame for kind in scores})
    violation: list[tuple[float, str]] = []
    review: list[tuple[float, str, str]] = []
    strengths: dict[str, float] = {}
    best_unmasked = 0.0
    for kind in kinds:
        s = np.array([sc[kind].strength if kind in sc else 0.0 for _, sc in per_frame])
        s_strong = np.array([sc[kind].strength if kind in sc and sc[kind].strong else 0.0 for _, sc in per_frame])
        persistent = _kth(s, k)
        persistent_strong = _kth(s_strong, k)
        cats = [sc[kind].category for _, sc in per_frame if kind in sc]
        category = max(set(cats), key=lambda c: (cats.count(c), _PRIORITY.get(c, 0)))
        strengths[category] = max(strengths.get(category, 0.0), persistent)
        best_unmasked = max(best_unmasked, persistent)
        if persistent_strong >= settings.violation_threshold:
            violation.append((persistent_strong, kind))
        elif persistent >= settings.review_threshold:
            review.append((persistent, kind, f"weak evidence of a {category} (strength {persistent:.2f})"))
        elif float(s_strong.max()) >= settings.violation_threshold:
            review.append((
                float(s_strong.max()), kind,
                f"strong evidence of a {category} in {int((s_strong >= settings.violation_threshold).sum())} "
                f"of {n} sampled frames (needs {k})",
            ))

    def frames_of(kind: str) -> list[int]:
        return [i for i, sc in per_frame if kind in sc and sc[kind].strength >= settings.review_threshold]

    def category_of(kind: str) -> str:
        cats = [sc[kind].category for _, sc in per_frame if kind in sc and sc[kind].strength >= settings.review_threshold]
        cats = cats or [sc[kind].category for _, sc in per_frame if kind in sc]
        return max(set(cats), key=lambda c: (cats.count(c), _PRIORITY.get(c, 0)))

    if violation:
        violation.sort(reverse=True)
        top_s, top_kind = violation[0]
        made = [kd for _, kd in violation] + [kd for _, kd, _ in review]
        cat = category_of(top_kind)
        return Decision(
            "violation", cat, top_s, made, sorted({f for kd in made for f in frames_of(kd)}), strengths,
            f"unmasked evidence of a {cat} (strength {top_s:.2f} in at least {k} of {n} sampled frames)",
        )
    if review:
        review.sort(key=lambda t: t[0], reverse=True)
        top_s, top_kind, why = review[0]
        made = [kd for _, kd, _ in review]
        frames = sorted({f for kd in made for f in frames_of(kd)})
        return Decision("review", category_of(top_kind), top_s, made, frames, strengths, why)
    reason = "no unmasked Art. 7 evidence" if best_unmasked == 0.0 else (
        f"unmasked evidence too weak (strongest {best_unmasked:.2f} < {settings.review_threshold})"
    )
    return Decision("compliant", None, 1.0 - best_unmasked, [], [], strengths, reason)


# --------------------------------------------------------------------------- the fused verdict
@dataclass(frozen=True)
class FrameJudgement:
    """The fusion model's view of one frame.

    `p`: P(prohibited place). `gated`: P as it may count, 0 when the frame has no unmasked
    localised evidence (deciding items) but has masked evidence (the camera's zones already hide
    what made it look like one); a frame with no localised evidence at all keeps P, and the whole
    view is then its evidence (`whole_view`). `items`: the deciding evidence ids (unmasked items
    pushing towards prohibited). `groups`: contribution per source (log-odds). `category`: the
    category with the largest positive contribution (None when only unlocalised sources pushed).
    """

    p: float
    gated: float
    category: str | None
    items: tuple[str, ...]
    whole_view: bool
    masked_only: bool
    groups: dict[str, float]
    logit: float


def judge_frame(
    p: float, logit: float, groups: dict[str, float], items: list[Evidence],
    group_category: dict[str, str | None], view_masked: bool,
) -> FrameJudgement:
    """Gate and name one frame (see `FrameJudgement`). `items` carry their contributions; an item's
    group is `obj:<class>` (boxes) or `seg:<class>` (regions); `group_category` maps groups to the
    category they point to; `view_masked`: the zones hide most of the view."""
    deciding = [e for e in items if not e.masked and (e.contribution or 0.0) > 0.0]
    masked_only = not deciding and any(e.masked for e in items)
    whole_view = not deciding and not masked_only
    gated = p if deciding or (whole_view and not view_masked) else 0.0
    per_cat: dict[str, float] = {}
    for g, c in groups.items():
        cat = group_category.get(g)
        if cat and c > 0:
            per_cat[cat] = per_cat.get(cat, 0.0) + c
    for e in deciding:  # a dormitory item (several or stacked beds) names the place
        if e.category == "dormitory":
            per_cat["dormitory"] = per_cat.get("dormitory", 0.0) + per_cat.pop("guest_room", 0.0) + 1e-6
    category = max(per_cat, key=lambda k: per_cat[k]) if per_cat else None
    return FrameJudgement(p, gated, category, tuple(e.id for e in deciding), whole_view, masked_only, groups, logit)


def decide_fused(per_frame: list[tuple[int, FrameJudgement]], violation: float, review: float, min_frames: int) -> Decision:
    """A verdict from the frames' gated probabilities: the k-th highest (k = min(min_frames, n))
    must reach `violation` (violation) or `review` (review); a frame alone above `violation` when k
    frames are not gives a review; otherwise compliant (confidence 1 - that probability)."""
    n = len(per_frame)
    k = max(1, min(min_frames, n))
    g = np.array([j.gated for _, j in per_frame])
    persistent = _kth(g, k)
    top = float(g.max())
    frames = [i for i, j in per_frame if j.gated >= review]
    cats = [j.category for _, j in per_frame if j.gated >= review and j.category]
    category = max(set(cats), key=lambda c: (cats.count(c), _PRIORITY.get(c, 0))) if cats else None
    strengths: dict[str, float] = {}
    for _, j in per_frame:
        if j.category:
            strengths[j.category] = max(strengths.get(j.category, 0.0), j.gated)
    what = f"a {category}" if category else "a prohibited place (whole view)"
    if persistent >= violation:
        return Decision("violation", category, persistent, ["fusion"], frames, strengths,
                        f"P({what}) = {persistent:.2f} >= {violation:.2f} in at least {k} of {n} sampled frames")
    if persistent >= review:
        return Decision("review", category, persistent, ["fusion"], frames, strengths,
                        f"P({what}) = {persistent:.2f}: between the review ({review:.2f}) and violation ({violation:.2f}) thresholds")
    if top >= violation:
        return Decision("review", category, top, ["fusion"], frames, strengths,
                        f"P({what}) = {top:.2f} in {int((g >= violation).sum())} of {n} sampled frames (needs {k})")
    p_max = max(j.p for _, j in per_frame)
    if p_max >= review and all(j.masked_only or j.gated < review for _, j in per_frame):
        reason = f"the view looks like a prohibited place (P {p_max:.2f}) but its evidence is masked by the camera's zones"
    else:
        reason = f"P(prohibited place) = {persistent:.2f} < {review:.2f}"
    return Decision("compliant", None, 1.0 - persistent, [], [], strengths, reason)
