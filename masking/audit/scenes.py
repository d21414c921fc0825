"""Scene classifier: an operator-trained head on pooled YOLOX-Nano backbone features.

The backbone is the registry entry's `file` (the YOLOX-Nano ONNX). Its graph is extended, in
memory, with extra outputs (intermediate feature maps: by default the dark4 and dark5 stages of
the CSPDarknet backbone), average-pooled over space into one feature vector per frame. The head
is a multinomial logistic regression (numpy only, at training and at run time): classes are Art. 7
categories plus `none`. It is stored as an `.npz` in the model cache (`head` in the registry).

Classes: by default the head learns *kinds* of place (`none`, `sleeping_place`, `wet_room`), not the six
Art. 7 categories: an operator labels tens of photos, and pooling the wet rooms (bathroom, toilet,
shower, changing room) gives that class enough examples to learn from (`--classes categories` keeps
the six). As a `Detector`, the classifier reports one whole-view box per class and frame, scored
P(class). The audit maps it to evidence through the registry like any model: by default only
`wet_room` counts (weak, weight 0.45), because sleeping places have COCO objects (beds) that the
detectors find and that a mask can cover, while wet rooms are the ones COCO cannot see.
Adding graph outputs edits the ONNX protobuf bytes directly: no `onnx` package at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from masking.art7 import KIND_OF
from masking.detect.base import Batch, as_batch
from masking.detect.detections import Detections
from masking.detect.onnx import OnnxModel, SessionOptions, create_session, read_model_bytes
from masking.detect.onnx_shapes import with_float_outputs
from masking.detect.preprocess import Normalise, prepare
from masking.errors import ModelError, ModelNotInstalledError
from masking.models.cache import model_dir, verified_model_path
from masking.models.registry import ModelEntry, load_registry

log = logging.getLogger(__name__)

NONE = "none"
# YOLOX-Nano (Megvii export, 416x416): SiLU outputs of the dark4 (128 x 26 x 26) and dark5
# (256 x 13 x 13) stages. Found by listing the graph's Mul nodes; stored in each head file.
DEFAULT_FEATURES: tuple[str, ...] = ("841", "886")
_NORM = Normalise(rgb=False, mean=0.0, scale=1.0)  # YOLOX: BGR, raw 0-255
HEAD_FORMAT = 1
# L2 penalties tried by `choose_l2` (the loss is a weighted mean, so 1.0 is already strong)
L2_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


def scene_label(category: str, prohibited: str, classes: str = "kinds") -> str:
    """The class a head learns for one labelled photo: `none` when not prohibited, else its
    category (`classes="categories"`) or the kind of place (`"kinds"`: sleeping_place / wet_room)."""
    if prohibited != "yes":
        return NONE
    if classes == "categories":
        return category
    if classes != "kinds":
        raise ValueError(f"classes must be 'kinds' or 'categories', got {classes!r}")
    return KIND_OF[category]


# --------------------------------------------------------------------------- features
class SceneFeatures:
    """Pooled backbone features of frames: (N, D) float32."""

    def __init__(self, entry: ModelEntry, feature_names: Sequence[str] = DEFAULT_FEATURES, threads: int = 2) -> None:
        path = verified_model_path(entry.name)
        data = with_float_outputs(read_model_bytes(entry.name, path), list(feature_names))
        session = create_session(entry.name, data, SessionOptions(intra_threads=threads))
        known = {o.name for o in session.get_outputs()}
        missing = [n for n in feature_names if n not in known]
        if missing:
            raise ModelError(f"model {entry.name!r}: backbone has no tensors {missing}")
        self.model = OnnxModel(entry.name, session, list(feature_names))
        self.feature_names = tuple(feature_names)
        hw = self.model.fixed_hw
        w, h = entry.input_size or (416, 416)
        self.input_wh = (hw[1], hw[0]) if hw else (int(w), int(h))

    def __call__(self, batch: Batch) -> npt.NDArray[np.float32]:
        frames = as_batch(batch)
        tensor, _ = prepare(frames, self.input_wh, _NORM, "topleft")
        outs = self.model.run(tensor)
        return np.concatenate([o.mean(axis=(2, 3)) for o in outs], axis=1).astype(np.float32)


# --------------------------------------------------------------------------- the head
@dataclass(frozen=True)
class SceneHead:
    """Multinomial logistic regression on standardised features."""

    classes: tuple[str, ...]
    mean: npt.NDArray[np.float32]
    std: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32]  # (D, C)
    bias: npt.NDArray[np.float32]  # (C,)
    feature_names: tuple[str, ...] = DEFAULT_FEATURES
    backbone_sha256: str = ""

    def proba(self, features: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Class probabilities (N, C)."""
        z = ((np.asarray(features, np.float32) - self.mean) / self.std) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def save(self, path: Path) -> None:
        import io

        from masking._atomic import atomic_write

        buf = io.BytesIO()
        np.savez(
            buf, format=np.array(HEAD_FORMAT), classes=np.array(self.classes), mean=self.mean, std=self.std,
            weights=self.weights, bias=self.bias, feature_names=np.array(self.feature_names),
            backbone_sha256=np.array(self.backbone_sha256),
        )
        atomic_write(path, buf.getvalue(), "scene head")

    @classmethod
    def load(cls, path: Path) -> SceneHead:
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != HEAD_FORMAT:
                    raise ModelError(f"{path}: scene head format {int(z['format'])}, expected {HEAD_FORMAT}; retrain it")
                head = cls(
                    tuple(str(c) for c in z["classes"]), z["mean"].astype(np.float32), z["std"].astype(np.float32),
                    z["weights"].astype(np.float32), z["bias"].astype(np.float32),
                    tuple(str(n) for n in z["feature_names"]), str(z["backbone_sha256"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable scene head ({exc}); retrain with `masking scenes train`") from exc
        if NONE not in head.classes:
            raise ModelError(f"{path}: scene head has no {NONE!r} class")
        return head


def train_head(
    features: npt.NDArray[np.floating],
    labels: Sequence[str],
    l2: float = 1.0,
    iterations: int = 500,
    feature_names: Sequence[str] = DEFAULT_FEATURES,
) -> SceneHead:
    """Fit the head by full-batch gradient descent (convex: the result does not depend on a seed).

    Loss: weighted mean cross-entropy + l2/2 * ||W||^2 on standardised features; `none` and the
    Art. 7 categories together each carry half the weight, so the split of the training set does
    not move the decision threshold.
    """
    x = np.asarray(features, np.float64)
    classes = tuple(sorted(set(labels), key=lambda c: (c != NONE, c)))
    if len(classes) < 2 or NONE not in classes:
        raise ModelError(f"training needs `{NONE}` and at least one Art. 7 category; got {list(classes)}")
    y = np.array([classes.index(c) for c in labels])
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    xs = (x - mean) / std
    n, d = xs.shape
    c = len(classes)
    onehot = np.eye(c)[y]
    is_none = y == classes.index(NONE)
    # half the weight on `none`, half on the Art. 7 categories together
    sample_w = np.where(is_none, 0.5 / max(int(is_none.sum()), 1), 0.5 / max(int((~is_none).sum()), 1))
    if not is_none.any() or is_none.all():
        sample_w = np.full(n, 1.0 / n)
    w = np.zeros((d, c))
    b = np.zeros(c)
    # step 1/L, L = a bound on the gradient's Lipschitz constant: converges without tuning
    lipschitz = 0.5 * float(np.linalg.eigvalsh((xs * sample_w[:, None]).T @ xs).max()) + l2 + 1e-9
    lr = 1.0 / lipschitz
    for _ in range(iterations):
        z = xs @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w[:, None]
        w -= lr * (xs.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return SceneHead(
        classes, mean.astype(np.float32), std.astype(np.float32), w.astype(np.float32), b.astype(np.float32),
        tuple(feature_names),
    )


def stratified_folds(
    labels: Sequence[object], k: int, seed: int = 0, classes: Sequence[object] | None = None
) -> list[npt.NDArray[np.int64]]:
    """`k` test folds, each class spread evenly over them (shuffled with `seed`); classes are taken
    in `classes` order (default: sorted)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    lab = np.asarray(labels)
    offset = 0
    for cls in classes if classes is not None else sorted(set(labels)):  # type: ignore[type-var]
        idx = np.flatnonzero(lab == cls)
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[(offset + j) % k].append(int(i))
        offset += len(idx)
    return [np.array(sorted(f), np.int64) for f in folds if f]


def _binary_log_loss(head: SceneHead, x: npt.NDArray[np.floating], labels: Sequence[str]) -> float:
    """Log-loss of `none` against everything else, `none` and the rest each weighing half."""
    p_none = np.clip(head.proba(x)[:, head.classes.index(NONE)].astype(np.float64), 1e-6, 1 - 1e-6)
    is_none = np.array([c == NONE for c in labels])
    w = np.where(is_none, 0.5 / max(int(is_none.sum()), 1), 0.5 / max(int((~is_none).sum()), 1))
    return float(-(w * np.log(np.where(is_none, p_none, 1.0 - p_none))).sum())


def choose_l2(
    features: npt.NDArray[np.floating], labels: Sequence[str], grid: Sequence[float] = L2_GRID, k: int = 4, seed: int = 0
) -> float:
    """The L2 penalty from `grid` with the lowest `k`-fold cross-validated log-loss of none vs the
    rest (ties: the stronger penalty). Only `features`/`labels` are seen: call it on a training
    fold to keep an outer evaluation honest (nested cross-validation)."""
    x = np.asarray(features)
    lab = list(labels)
    folds = stratified_folds(lab, min(k, len(lab)), seed)
    best: tuple[float, float] | None = None
    for l2 in sorted(grid, reverse=True):
        loss = 0.0
        for test in folds:
            train = np.setdiff1d(np.arange(len(lab)), test)
            train_lab = [lab[i] for i in train]
            if NONE not in train_lab or len(set(train_lab)) < 2:
                continue
            loss += _binary_log_loss(train_head(x[train], train_lab, l2=l2), x[test], [lab[i] for i in test])
        if best is None or loss < best[0] - 1e-9:
            best = (loss, l2)
    return best[1] if best else 1.0


def cross_validate(
    features: npt.NDArray[np.floating], labels: Sequence[str], k: int = 5, seed: int = 0, l2: float | None = None
) -> npt.NDArray[np.float32]:
    """Out-of-fold P(not none) for every sample: each is scored by a head trained without it.
    `l2=None` chooses the penalty inside each training fold (`choose_l2`: nested CV)."""
    x = np.asarray(features)
    lab = list(labels)
    out = np.zeros(len(lab), np.float32)
    for test in stratified_folds(lab, k, seed):
        train = np.setdiff1d(np.arange(len(lab)), test)
        train_lab = [lab[i] for i in train]
        pen = choose_l2(x[train], train_lab, seed=seed) if l2 is None else l2
        head = train_head(x[train], train_lab, l2=pen)
        out[test] = 1.0 - head.proba(x[test])[:, head.classes.index(NONE)]
    return out


# --------------------------------------------------------------------------- the detector
def head_path(entry: ModelEntry) -> Path:
    """Where the trained head of a `scenes` entry lives: the model cache."""
    if entry.head is None:
        raise ModelError(f"model {entry.name!r} is not a scene classifier (no `head`)")
    return model_dir() / entry.head


class SceneClassifier:
    """A scene classifier as a `Detector`: one whole-view box per frame (see the module doc)."""

    whole_view = True

    def __init__(self, entry: ModelEntry, head: SceneHead, threads: int = 2, features: SceneFeatures | None = None) -> None:
        self.name = entry.name
        self.head = head
        if features is not None and features.feature_names != head.feature_names:
            raise ModelError(f"model {entry.name!r}: head reads {head.feature_names}, features give {features.feature_names}")
        self.features = features or SceneFeatures(entry, head.feature_names, threads)
        self.class_names = tuple(c for c in head.classes if c != NONE)
        self._others = np.array([i for i, c in enumerate(head.classes) if c != NONE])

    def scores(self, batch: Batch) -> npt.NDArray[np.float32]:
        """Class probabilities (N, C) in `head.classes` order."""
        return self.head.proba(self.features(batch))

    def detect(self, batch: Batch) -> list[Detections]:
        """One whole-view box per class (not `none`) and frame, scored P(class)."""
        frames = as_batch(batch)
        if frames.shape[0] == 0:
            return []
        p = self.scores(frames)[:, self._others]
        h, w = frames.shape[1:3]
        c = len(self.class_names)
        boxes = np.tile(np.array([[0.0, 0.0, float(w), float(h)]], np.float32), (c, 1))
        ids = np.arange(c, dtype=np.int32)
        return [Detections(boxes, p[k].astype(np.float32), ids, self.class_names) for k in range(frames.shape[0])]


def load_scene_classifier(name: str, threads: int = 2) -> SceneClassifier:
    """The registry's scene classifier `name`; `ModelNotInstalledError` when no head is trained yet."""
    entry = load_registry().get(name)
    path = head_path(entry)
    if not path.is_file():
        raise ModelNotInstalledError(
            f"model {name!r}: no trained head at {path}; train one on your labelled snapshots with "
            f"`masking scenes train MANIFEST` (see README, 'Scene classifier')"
        )
    head = SceneHead.load(path)
    if head.backbone_sha256 and head.backbone_sha256 != entry.sha256:
        raise ModelError(
            f"model {name!r}: the head at {path} was trained on backbone features of another file "
            f"(sha256 {head.backbone_sha256[:12]}..., registry {entry.sha256[:12]}...); retrain it with "
            "`masking scenes train MANIFEST`"
        )
    unknown = [c for c in head.classes if c != NONE and c not in entry.evidence]
    if unknown:
        log.warning("model %r: head classes %s have no evidence rule in the registry: never evidence", name, unknown)
    return SceneClassifier(entry, head, threads)
