"""Training the fusion model on labelled photos (`masking scenes train`, benchmarks/audit_quality.py).

`view_features` runs an `Auditor`'s object detector (whole view and tiles) and scene models over one
photo, as an audit does, and returns the raw features and the embedding. `train` chooses the L2
penalty and the number of embedding axes by stratified cross-validation (log-loss, 5 folds x 3
seeds; scikit-learn, the `dev` extra), fits on every photo and records how and on what.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from masking.audit.auditor import Auditor
from masking.audit.evidence import frame_evidence
from masking.audit.fused import FusedJudge
from masking.audit.fusion import (
    AXES_GRID,
    C_GRID,
    FusionModel,
    ViewInputs,
    choose,
    fit_fusion,
    out_of_fold,
    pick_thresholds,
)
from masking.errors import ModelError


def view_features(
    auditor: Auditor, space_judge: FusedJudge, image: npt.NDArray[np.uint8]
) -> tuple[dict[str, float], npt.NDArray[np.float32] | None, dict[str, float]]:
    """(raw features, embedding, seconds per model) of one photo with no masked zones."""
    st = auditor.settings
    obj = space_judge.model.object_model
    t0 = time.perf_counter()
    dets = auditor._detect(image)[obj]
    seconds = {obj: time.perf_counter() - t0}
    if auditor.scenes is None:
        raise ModelError("view_features needs an Auditor with scene models (verdict: fusion)")
    obs = auditor.scenes.observe(image)
    seconds.update(obs.seconds)
    size = (image.shape[1], image.shape[0])
    boxes = frame_evidence({obj: dets}, auditor.evidence_map, size, None, st, 0)
    raw = space_judge.space.raw(ViewInputs(boxes, dets, size, obs, None))
    return raw, obs.embedding, seconds


def feature_names(judge: FusedJudge) -> list[str]:
    """The names of the non-embedding features the judge's models can give."""
    return judge.space.names()


def train(
    raw: Sequence[dict[str, float]], embeddings: npt.NDArray[np.floating] | None, prohibited: Sequence[bool],
    names: list[str], *, violation: float | None, review: float | None, object_model: str, scene_models: list[str],
    trained_on: str, c: float | None = None, axes: int | None = None, seeds: Sequence[int] = (0, 1, 2),
    c_grid: Sequence[float] = C_GRID, axes_grid: Sequence[int] = AXES_GRID,
) -> FusionModel:
    """Choose (C, axes) by CV unless both are given, and the thresholds from the out-of-fold
    probabilities of that choice unless given (`pick_thresholds`); fit on everything; describe it."""
    x = np.array([[r[n] for n in names] for r in raw], np.float64)
    y = np.asarray(prohibited, bool)
    if y.all() or not y.any():
        raise ModelError("training needs both prohibited and allowed photos")
    emb = None if embeddings is None else np.asarray(embeddings, np.float64)
    tried: dict[str, float] = {}
    if c is None or axes is None:
        c_sel, axes_sel, tried = choose(
            x, emb, y, names, c_grid if c is None else [c], axes_grid if axes is None else [axes], seeds=seeds
        )
    else:
        c_sel, axes_sel = c, axes
    oof = np.concatenate([out_of_fold(x, emb, y, names, c_sel, axes_sel, 5, s) for s in seeds])
    truth = np.concatenate([y] * len(seeds))
    picked = pick_thresholds(oof, truth)
    model = fit_fusion(x, emb, y, names, c_sel, axes_sel)
    model.violation = picked[0] if violation is None else violation
    model.review = picked[1] if review is None else review
    if not 0.0 < model.review <= model.violation < 1.0:
        raise ModelError(f"thresholds must satisfy 0 < review ({model.review}) <= violation ({model.violation}) < 1")
    model.object_model, model.scene_models = object_model, list(scene_models)
    info: dict[str, Any] = {
        "name": "fusion",
        "trained_on": trained_on,
        "photos": int(len(y)),
        "prohibited": int(y.sum()),
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "how": "scikit-learn LogisticRegression (L2, lbfgs) on standardised features; C and the number of "
        "embedding PCA axes chosen by 5-fold stratified cross-validation (log-loss, seeds "
        f"{list(seeds)}, one-standard-error rule: the most regularised pair within one SE of the best); "
        "thresholds from the out-of-fold probabilities (review: the lowest with precision >= 0.92, else the "
        "best min(precision, recall); violation: the lowest from review up with precision >= 0.95) unless "
        "given; then fitted on every photo",
        "thresholds_picked": {"violation": picked[0], "review": picked[1]},
        "C": c_sel,
        "embedding_axes": axes_sel,
        "cv_log_loss": tried,
    }
    model.info = info
    return model
