"""The fused verdict: a regularised logistic model over object and scene evidence (numpy at run time).

Feature vector of one view (names are stable; a model file lists the ones it uses, in order):
- `obj:<class>`: the object detector's best score for an evidence class (its registry `evidence:`
  block: bed, toilet, sink, couch), over the whole view and its tiles, unmasked boxes only; 0 if none.
- `obj:beds`: distinct unmasked beds, capped at 3; `obj:several`: 1 when the beds make a dormitory
  (several, or stacked: the registry's `several` rule).
- `ctx:<class>`: the detector's best unmasked score for a context class (`CONTEXT_OBJECTS`: things
  of allowed places, a car, an oven...).
- `seg:<class>:<band>`: sqrt of a segmentation class's share of the view, visible pixels only, in
  the band `all` (whole view), `low`/`high` (lower/upper half), `mid` (centre). Evidence classes
  (the segmenter's `evidence:` block) get all four bands, context classes (`SEG_CONTEXT`) `all`.
- `inet:<class>`: sqrt of the ImageNet score of a relevant class (`IMAGENET_CLASSES`).
- `emb:<k>`: the embedding projected on the model's k-th principal axis (stored in the model).
Masked boxes and pixels count as absent; the ImageNet and embedding features see the whole view (a
privacy mask is never the reason a view is judged compliant: the verdict also needs unmasked
localised evidence, see `masking.audit.verdict`).

`FusionModel.explain` splits the log-odds into per-feature contributions, `coef * (x - mean) / scale`,
grouped by source (`obj:bed`, `seg:bed`, `inet:bathtub`, `emb`...): the evidence that decided.
`train_fusion` fits it with scikit-learn (dev extra; import only there), choosing the L2 penalty
and the number of embedding axes by stratified cross-validation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from masking.audit.coverage import box_coverage
from masking.audit.result import Evidence
from masking.audit.scene_evidence import BANDS, SceneObservation, class_shares, visible_mask
from masking.detect.detections import Detections
from masking.errors import ModelError

log = logging.getLogger(__name__)

FORMAT = 1
MASKED_COVERAGE = 0.8  # a context box this much under masked zones is not seen (AuditSettings' default)
MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "fusion.json"

CONTEXT_OBJECTS: tuple[str, ...] = (
    "person", "chair", "dining table", "tv", "laptop", "refrigerator", "oven", "microwave", "car",
    "bench", "potted plant", "book", "bottle", "cup", "suitcase", "umbrella", "handbag",
)
SEG_CONTEXT: tuple[str, ...] = (
    "wall", "floor", "ceiling", "door", "windowpane", "cabinet", "table", "chair", "sofa", "desk",
    "counter", "countertop", "stove", "refrigerator", "car", "road", "sky", "tree",
    "building", "stairs", "shelf", "curtain", "person", "seat", "railing",
    "lamp", "painting", "bookcase", "box", "plant", "grandstand", "column",
)
# ImageNet classes (as in the labels file, first name) -> the Art. 7 category they point to. Classes
# of allowed places (dining table, prison, sliding door, restaurant...) were tried as well and
# raised the cross-validated log-loss on the training photos (0.246 -> 0.239 without them).
IMAGENET_CLASSES: dict[str, str | None] = {
    "shower curtain": "shower", "bathtub": "shower", "tub": "shower", "toilet seat": "toilet",
    "washbasin": "bathroom", "toilet tissue": "toilet", "medicine chest": "bathroom",
    "bath towel": "bathroom", "four-poster": "guest_room", "quilt": "guest_room",
    "studio couch": "guest_room", "crib": "guest_room", "wardrobe": "changing_room",
}


def imagenet_index(class_names: Sequence[str]) -> dict[str, int]:
    """`IMAGENET_CLASSES` -> output index, matching a label's first name ("bathtub, bathing tub" -> bathtub)."""
    first = {n.split(",")[0].strip(): i for i, n in enumerate(class_names)}
    missing = [c for c in IMAGENET_CLASSES if c not in first]
    if missing:
        raise ModelError(f"ImageNet labels lack {missing}")
    return {c: first[c] for c in IMAGENET_CLASSES}


@dataclass(frozen=True)
class ViewInputs:
    """Everything the feature vector of one view is computed from."""

    items: Sequence[Evidence]  # the object detector's evidence items (masked flag set)
    detections: Detections | None  # the object detector's boxes (whole view + tiles), for context
    size: tuple[int, int]  # (width, height)
    scene: SceneObservation
    masked: BaseGeometry | None


@dataclass(frozen=True)
class FeatureSpace:
    """How feature names map to computations: the segmenter's and ImageNet class lists and the
    evidence classes of the object detector and of the segmenter."""

    object_classes: tuple[str, ...]
    seg_classes: tuple[str, ...]  # segmenter output names (index = class id)
    seg_evidence: tuple[str, ...]
    imagenet_classes: tuple[str, ...] = ()

    def names(self, embedding_axes: int = 0, bands: bool = False) -> list[str]:
        """Feature names in order. `bands`: the evidence classes' shares per band too (by default
        only their whole-view share: on the training photos the bands did not lower the
        cross-validated loss, 0.254 vs 0.248)."""
        out = [f"obj:{c}" for c in self.object_classes] + ["obj:beds", "obj:several"]
        out += [f"ctx:{c}" for c in CONTEXT_OBJECTS]
        out += [f"seg:{c}:{b}" for c in self.seg_evidence for b in (BANDS if bands else BANDS[:1])]
        out += [f"seg:{c}:all" for c in SEG_CONTEXT if c in self.seg_classes]
        if self.imagenet_classes:
            out += [f"inet:{c}" for c in IMAGENET_CLASSES]
        out += [f"emb:{k}" for k in range(embedding_axes)]
        return out

    def raw(self, view: ViewInputs) -> dict[str, float]:
        """Every feature but the embedding axes, by name."""
        f: dict[str, float] = {}
        unmasked = [e for e in view.items if not e.masked]
        for c in self.object_classes:
            f[f"obj:{c}"] = max([e.score for e in unmasked if e.class_name == c] + [0.0])
        beds = [e for e in unmasked if e.class_name == "bed"]
        f["obj:beds"] = float(min(len(beds), 3))
        f["obj:several"] = float(any(e.category == "dormitory" for e in beds))
        det = view.detections
        ctx = {c: 0.0 for c in CONTEXT_OBJECTS}
        if det is not None and len(det):
            w, h = view.size
            norm = np.clip(np.asarray(det.xyxy, np.float64) / np.array([w, h, w, h], np.float64), 0.0, 1.0)
            seen = box_coverage(norm, view.masked) < MASKED_COVERAGE
            names = det.names
            for c in CONTEXT_OBJECTS:
                sel = seen & (names == c)
                if sel.any():
                    ctx[c] = float(det.confidence[sel].max())
        f.update({f"ctx:{c}": v for c, v in ctx.items()})
        labels = view.scene.labels
        if labels is not None:
            shares = class_shares(labels, visible_mask(labels.shape[:2], view.masked), len(self.seg_classes))
            index = {n: i for i, n in enumerate(self.seg_classes)}
            for c in self.seg_evidence:
                for b in BANDS:
                    f[f"seg:{c}:{b}"] = float(np.sqrt(shares[b][index[c]]))
            for c in SEG_CONTEXT:
                if c in index:
                    f[f"seg:{c}:all"] = float(np.sqrt(shares["all"][index[c]]))
        if view.scene.imagenet is not None and self.imagenet_classes:
            idx = imagenet_index(self.imagenet_classes)
            for c, i in idx.items():
                f[f"inet:{c}"] = float(np.sqrt(max(float(view.scene.imagenet[i]), 0.0)))
        return f


def group_of(feature: str) -> str:
    """The source a feature belongs to, for explanations: `obj:bed`, `seg:bed`, `inet:tub`, `emb`..."""
    kind, _, rest = feature.partition(":")
    if kind == "emb":
        return "emb"
    if kind == "obj" and rest in ("beds", "several"):
        return "obj:bed"
    if kind == "seg":
        return f"seg:{rest.rsplit(':', 1)[0]}"
    return f"{kind}:{rest}"


@dataclass
class FusionModel:
    """The trained logistic model (see the module doc); `thresholds` turn P into verdicts."""

    features: list[str]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    intercept: float
    pca_mean: npt.NDArray[np.float64] | None = None
    pca_axes: npt.NDArray[np.float64] | None = None  # (k, D)
    violation: float = 0.5
    review: float = 0.3
    object_model: str = "yolox-nano"
    scene_models: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # how and on what it was trained, metrics

    @property
    def embedding_axes(self) -> int:
        return 0 if self.pca_axes is None else int(self.pca_axes.shape[0])

    def vector(self, raw: Mapping[str, float], embedding: npt.NDArray[np.floating] | None) -> npt.NDArray[np.float64]:
        """The model's feature vector from `FeatureSpace.raw` output and the embedding."""
        emb: dict[str, float] = {}
        if self.pca_axes is not None and self.pca_mean is not None:
            if embedding is None:
                raise ModelError("the fusion model reads embedding axes but no embedding model ran")
            proj = (np.asarray(embedding, np.float64) - self.pca_mean) @ self.pca_axes.T
            emb = {f"emb:{k}": float(v) for k, v in enumerate(proj)}
        out = np.empty(len(self.features), np.float64)
        for i, name in enumerate(self.features):
            v = emb.get(name, raw.get(name))
            if v is None:
                raise ModelError(f"fusion feature {name!r} is not available (is its model in the audit settings?)")
            out[i] = v
        return out

    def contributions(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Per-feature log-odds contributions, (n, F) for (n, F) vectors (or (F,) for (F,))."""
        return (np.asarray(x, np.float64) - self.mean) / self.scale * self.coef

    def logit(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        return np.asarray(self.contributions(x).sum(axis=-1) + self.intercept, np.float64)

    def proba(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """P(prohibited place) per vector."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.logit(x))), np.float64)

    def explain(self, x: npt.NDArray[np.floating]) -> dict[str, float]:
        """Source group -> summed contribution, largest magnitude first."""
        groups: dict[str, float] = {}
        for name, c in zip(self.features, self.contributions(x)):
            g = group_of(name)
            groups[g] = groups.get(g, 0.0) + float(c)
        return dict(sorted(groups.items(), key=lambda kv: -abs(kv[1])))

    # ------------------------------------------------------------------ file
    def to_json(self) -> dict[str, Any]:
        def r(a: npt.NDArray[np.floating], digits: int = 6) -> list[Any]:
            return np.round(np.asarray(a, np.float64), digits).tolist()  # type: ignore[no-any-return]

        return {
            "format": FORMAT,
            "object_model": self.object_model,
            "scene_models": list(self.scene_models),
            "thresholds": {"violation": self.violation, "review": self.review},
            "info": self.info,
            "features": list(self.features),
            "mean": r(self.mean),
            "scale": r(self.scale),
            "coef": r(self.coef),
            "intercept": round(float(self.intercept), 6),
            "embedding": None if self.pca_axes is None else {"mean": r(self.pca_mean, 5), "axes": r(self.pca_axes, 5)},  # type: ignore[arg-type]
        }

    def save(self, path: Path) -> None:
        from masking._atomic import atomic_write

        doc = self.to_json()
        body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in doc.items())
        atomic_write(path, "{\n" + body + "\n}\n", "fusion model")  # one line per key: small, diffable

    @classmethod
    def load(cls, path: Path | None = None) -> FusionModel:
        p = Path(path) if path else MODEL_FILE
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            if d.get("format") != FORMAT:
                raise ModelError(f"{p}: fusion model format {d.get('format')!r}, expected {FORMAT}; retrain it")
            emb = d.get("embedding")
            n = len(d["features"])
            model = cls(
                list(d["features"]), np.array(d["mean"], np.float64), np.array(d["scale"], np.float64),
                np.array(d["coef"], np.float64), float(d["intercept"]),
                None if emb is None else np.array(emb["mean"], np.float64),
                None if emb is None else np.array(emb["axes"], np.float64).reshape(-1, len(emb["mean"])),
                float(d["thresholds"]["violation"]), float(d["thresholds"]["review"]),
                str(d["object_model"]), list(d["scene_models"]), dict(d.get("info") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{p}: not a readable fusion model ({exc}); retrain with `masking scenes train`") from exc
        if not (model.mean.shape == model.scale.shape == model.coef.shape == (n,)):
            raise ModelError(f"{p}: fusion model arrays do not match its {n} features")
        if not 0.0 < model.review <= model.violation < 1.0:
            raise ModelError(f"{p}: thresholds must satisfy 0 < review <= violation < 1")
        return model


# --------------------------------------------------------------------------- training
C_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
AXES_GRID: tuple[int, ...] = (0, 16, 32, 64)


def _fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], c: float) -> tuple[Any, Any]:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:  # training only: audits never import it
        raise ModelError(f"training the fusion model needs scikit-learn: pip install 'masking[dev]' ({exc})") from exc

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
    return scaler, lr


def _pca(emb: npt.NDArray[np.float64], k: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    mean = emb.mean(axis=0)
    _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
    axes = vt[:k]
    # a fixed sign per axis (largest loading positive), so retraining gives comparable files
    axes *= np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])[:, None]
    return mean, axes


def fit_fusion(
    raw: npt.NDArray[np.float64], emb: npt.NDArray[np.float64] | None, y: npt.NDArray[np.bool_],
    features: list[str], c: float, axes: int,
) -> FusionModel:
    """Fit on `raw` (n, F) features named `features` (without embedding axes) and `emb` (n, D)."""
    x = raw
    names = list(features)
    pca_mean = pca_axes = None
    if axes:
        if emb is None:
            raise ModelError("embedding axes asked for, but no embeddings given")
        pca_mean, pca_axes = _pca(emb, axes)
        x = np.concatenate([raw, (emb - pca_mean) @ pca_axes.T], axis=1)
        names += [f"emb:{k}" for k in range(axes)]
    scaler, lr = _fit(x, y, c)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return FusionModel(names, scaler.mean_.astype(np.float64), scale.astype(np.float64),
                       lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), pca_mean, pca_axes)


def stratified_folds(y: npt.NDArray[np.bool_], k: int, seed: int) -> list[npt.NDArray[np.int64]]:
    """`k` test folds with positives and negatives spread evenly (shuffled with `seed`)."""
    from masking.audit.scenes import stratified_folds as folds

    return folds([bool(v) for v in y], k, seed, classes=(True, False))


def out_of_fold(
    raw: npt.NDArray[np.float64], emb: npt.NDArray[np.float64] | None, y: npt.NDArray[np.bool_],
    features: list[str], c: float, axes: int, k: int = 5, seed: int = 0,
) -> npt.NDArray[np.float64]:
    """P(prohibited) of every view from a model trained without its fold."""
    p = np.zeros(len(y), np.float64)
    for test in stratified_folds(y, k, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        m = fit_fusion(raw[train], None if emb is None else emb[train], y[train], features, c, axes)
        xt = raw[test] if not axes else np.concatenate([raw[test], (emb[test] - m.pca_mean) @ m.pca_axes.T], axis=1)  # type: ignore[index,operator,union-attr]
        p[test] = m.proba(xt)
    return p


def log_loss(p: npt.NDArray[np.float64], y: npt.NDArray[np.bool_]) -> float:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(y, np.log(q), np.log(1 - q))))


def choose(
    raw: npt.NDArray[np.float64], emb: npt.NDArray[np.float64] | None, y: npt.NDArray[np.bool_],
    features: list[str], c_grid: Sequence[float] = C_GRID, axes_grid: Sequence[int] = AXES_GRID,
    k: int = 5, seeds: Sequence[int] = (0, 1, 2),
) -> tuple[float, int, dict[str, float]]:
    """(C, embedding axes) by the one-standard-error rule on the cross-validated log-loss: among the
    pairs whose mean fold loss is within one standard error of the best, the most regularised (the
    smallest C, then the fewest axes). Returns the choice and the mean loss of every pair tried
    (`"C=..,axes=.."` -> loss). `k` folds x `seeds`."""
    tried: dict[str, float] = {}
    results: list[tuple[float, float, float, int]] = []  # (mean, se, C, axes)
    for axes in axes_grid if emb is not None else (0,):
        for c in c_grid:
            fold_losses: list[float] = []
            for s in seeds:
                p = out_of_fold(raw, emb, y, features, c, axes, k, s)
                fold_losses += [log_loss(p[t], y[t]) for t in stratified_folds(y, k, s)]
            mean = float(np.mean(fold_losses))
            se = float(np.std(fold_losses, ddof=1) / np.sqrt(len(fold_losses)))
            tried[f"C={c:g},axes={axes}"] = round(mean, 4)
            results.append((mean, se, c, axes))
    best_mean, best_se, _, _ = min(results)
    ok = [r for r in results if r[0] <= best_mean + best_se]
    _, _, c_sel, axes_sel = min(ok, key=lambda r: (r[2], r[3]))
    return c_sel, axes_sel, tried


def pick_thresholds(
    p: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], target_precision: float = 0.92,
    min_violation_precision: float = 0.95,
) -> tuple[float, float]:
    """(violation, review) thresholds from out-of-fold probabilities, on a 0.05 grid from 0.2 to 0.9.
    review: the lowest threshold whose precision (violation or review) reaches `target_precision`
    (the issue's floor: false alarms were its complaint), else the one with the best
    min(precision, recall); violation: the lowest threshold from review up whose precision reaches
    `min_violation_precision` (else 0.9)."""
    grid = np.round(np.arange(0.2, 0.901, 0.05), 2)

    def pr(t: float) -> tuple[float, float]:
        q = p >= t
        tp, fp, fn = int((q & y).sum()), int((q & ~y).sum()), int((~q & y).sum())
        return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)

    precise = [float(t) for t in grid if pr(t)[0] >= target_precision]
    if precise:
        review = precise[0]
    else:
        review = float(max(grid, key=lambda t: (min(pr(t)), -abs(t - 0.5))))
    above = [float(t) for t in grid if t >= review and pr(t)[0] >= min_violation_precision]
    return (above[0] if above else 0.9), review
