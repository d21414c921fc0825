"""Audit quality on a labelled folder: confusion table, precision/recall, mistakes with evidence.

    .venv/bin/python benchmarks/audit_quality.py ../shared/eval/dev [--quick] [--models ...] [--tiles 2]
        [--cv 5] [--seeds 0 1 2 3 4] [--no-scenes] [--set key=value ...]

A prediction is positive when the verdict is `violation` or `review`; the truth is positive when
`prohibited` is `yes` (`ambiguous` rows are excluded). Each image is audited as a camera with no
zones. Two evaluations:
  1. detector-only: the audit with the given detector models (default: the AuditSettings default),
     with its run time per photo;
  2. with the scene classifier, by repeated stratified k-fold cross-validation (k folds x each seed):
     for each fold a head is trained on the other folds' photos only (`train_head`, its L2 penalty
     chosen by `choose_l2` on those photos only: nested CV) and added to the detectors as the
     registry's `scenes` model. Printed per seed and as mean +- std, for:
       - the classifier alone (P(not none) >= 0.5);
       - the recommended configuration: the detectors + `scenes`, evidence as in the registry
         (the classifier speaks for wet rooms only);
       - for comparison, YOLOX-Nano alone + `scenes` speaking for every kind of place.
`--quick` runs one seed. Detector outputs are computed once per photo and reused across folds.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masking.audit import AuditFrame, Auditor, AuditResult, settings_from  # noqa: E402
from masking.audit.auditor import load_evidence_models  # noqa: E402
from masking.audit.evidence import evidence_map  # noqa: E402
from masking.audit.manifest import ManifestRow, read_manifest  # noqa: E402
from masking.audit.scenes import (  # noqa: E402
    NONE,
    SceneClassifier,
    SceneFeatures,
    choose_l2,
    scene_label,
    stratified_folds,
    train_head,
)
from masking.detect.detections import Detections  # noqa: E402
from masking.models.registry import EvidenceRule, load_registry  # noqa: E402
from masking.video.images import read_image  # noqa: E402

POSITIVE = ("violation", "review")


class _Cached:
    """A detector (or feature extractor) whose answers are remembered per input batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.memo: dict[tuple[Any, ...], Any] = {}
        for attr in ("name", "class_names", "feature_names", "whole_view"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def _key(self, batch: np.ndarray) -> tuple[Any, ...]:
        return (batch.shape, hashlib.blake2b(np.ascontiguousarray(batch).tobytes(), digest_size=16).digest())

    def detect(self, batch: np.ndarray) -> list[Detections]:
        key = self._key(batch)
        if key not in self.memo:
            self.memo[key] = self.inner.detect(batch)
        return self.memo[key]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        key = self._key(batch)
        if key not in self.memo:
            self.memo[key] = self.inner(batch)
        return self.memo[key]


def _prf(pairs: list[tuple[bool, bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(t and p for t, p in pairs)
    fp = sum((not t) and p for t, p in pairs)
    fn = sum(t and not p for t, p in pairs)
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    return prec, rec, tp, fp, fn


def _pairs(rows: list[ManifestRow], results: list[AuditResult]) -> list[tuple[bool, bool]]:
    return [(r.prohibited == "yes", res.verdict in POSITIVE) for r, res in zip(rows, results)]


def report(title: str, rows: list[ManifestRow], results: list[AuditResult]) -> tuple[float, float]:
    """Print the confusion table, per-label numbers and the mistakes; return (precision, recall)."""
    print(f"\n=== {title} ===")
    verdicts = ("violation", "review", "compliant")
    table: dict[str, Counter[str]] = {}
    for row, res in zip(rows, results):
        table.setdefault(f"{row.label} ({row.prohibited})", Counter())[res.verdict] += 1
    print(f"{'label (prohibited)':28s} " + " ".join(f"{v:>9s}" for v in verdicts) + "   recall/specificity")
    for key in sorted(table, key=lambda k: (not k.endswith("(yes)"), k)):
        c = table[key]
        n = sum(c.values())
        pos = c["violation"] + c["review"]
        rate = pos / n if key.endswith("(yes)") else (n - pos) / n
        print(f"{key:28s} " + " ".join(f"{c[v]:9d}" for v in verdicts) + f"   {rate:.2f} ({'recall' if key.endswith('(yes)') else 'spec.'})")
    pairs = _pairs(rows, results)
    prec, rec, tp, fp, fn = _prf(pairs)
    print(f"overall: precision {prec:.3f}  recall {rec:.3f}  (tp {tp}, fp {fp}, fn {fn}; n {len(pairs)})")
    strict = [(r.prohibited == "yes", res.verdict == "violation") for r, res in zip(rows, results)]
    sp, sr, *_ = _prf(strict)
    print(f"violation only: precision {sp:.3f}  recall {sr:.3f}")
    cats: dict[str, list[tuple[bool, bool]]] = {}
    for (t, p), r in zip(pairs, rows):
        if t:
            cats.setdefault(r.category, []).append((t, p))
    print("recall per Art. 7 category: " + ", ".join(f"{c} {sum(p for _, p in v)}/{len(v)}" for c, v in sorted(cats.items())))
    print("mistakes:")
    for (t, p), r, res in zip(pairs, rows, results):
        if t != p:
            ev = ", ".join(
                f"{e.class_name}@{e.model} {e.score:.2f}{' masked' if e.masked else ''}" for e in res.evidence[:5]
            ) or "no evidence"
            kind = "MISS" if t else "FALSE ALARM"
            print(f"  {kind:11s} {r.path.name:28s} {r.label:14s} -> {res.verdict:9s} {res.category or '-':13s} [{ev}]")
    return prec, rec


def audit_images(auditor: Auditor, rows: list[ManifestRow], images: dict[Path, np.ndarray]) -> list[AuditResult]:
    return [auditor.audit_frames([AuditFrame(images[r.path], 0, None)], None, str(r.path)) for r in rows]


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="Folder with manifest.csv and the images it names.")
    ap.add_argument("--models", nargs="+", help="Detector models (default: AuditSettings default).")
    ap.add_argument("--tiles", type=int, help="Tile grid n (default: AuditSettings default).")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Other AuditSettings fields.")
    ap.add_argument("--cv", type=int, default=5, help="Folds for the scene classifier's cross-validation.")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
        help="Fold shuffling seeds; the CV is repeated per seed (the first is shown in full).",
    )
    ap.add_argument("--quick", action="store_true", help="The first CV seed only, no comparison configuration (~1 min).")
    ap.add_argument("--no-scenes", action="store_true", help="Skip the scene-classifier evaluation.")
    ap.add_argument(
        "--scene-with", nargs="+",
        help="Detector models audited together with the scene classifier (default: the detector models).",
    )
    ap.add_argument("--classes", choices=("kinds", "categories"), default="kinds", help="What the heads learn.")
    ap.add_argument("--l2", type=float, help="Fixed L2 penalty (default: nested choice in each training fold).")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]

    overrides: dict[str, object] = {}
    if args.models:
        overrides["models"] = args.models
    if args.tiles is not None:
        overrides["tiles"] = args.tiles
    for kv in args.set:
        k, _, v = kv.partition("=")
        overrides[k] = float(v) if v.replace(".", "", 1).isdigit() else v
    settings = settings_from(overrides)
    rows = [r for r in read_manifest(args.dataset) if r.prohibited != "ambiguous"]
    print(f"{len(rows)} photos ({sum(r.prohibited == 'yes' for r in rows)} prohibited) from {args.dataset}; "
          f"models {settings.models}, tiles {settings.tiles} (tile boxes >= {settings.tile_min_score}), "
          f"violation >= {settings.violation_threshold}, review >= {settings.review_threshold}")
    images = {r.path: read_image(r.path) for r in rows}
    scene_with = args.scene_with or [m for m in settings.models if m != "scenes"]
    compare = [] if args.quick else ["yolox-nano"]
    names = list(dict.fromkeys([m for m in settings.models if m != "scenes"] + scene_with + compare))
    detectors = {m: _Cached(d) for m, d in load_evidence_models(names, args.threads, settings.min_score).items()}
    det_settings = settings_from({"models": [m for m in settings.models if m != "scenes"]}, settings)
    t0 = time.perf_counter()
    base = audit_images(Auditor(det_settings, {m: detectors[m] for m in det_settings.models}), rows, images)
    dt = (time.perf_counter() - t0) / len(rows)
    p, r = report(f"detector-only ({', '.join(det_settings.models)}, tiles {settings.tiles}; {dt * 1000:.0f} ms/photo)", rows, base)
    if args.no_scenes:
        return 0

    entry = load_registry().get("scenes")
    t0 = time.perf_counter()
    feats = _Cached(SceneFeatures(entry, threads=args.threads))
    x = np.concatenate([feats(images[r.path]) for r in rows])
    ft = (time.perf_counter() - t0) / len(rows)
    labels = [scene_label(r.category, r.prohibited, args.classes) for r in rows]
    truth = [r.prohibited == "yes" for r in rows]
    main_settings = settings_from({"models": [*scene_with, "scenes"]}, settings)
    main_map = evidence_map([*scene_with, "scenes"])
    # comparison: YOLOX-Nano whole view + the classifier speaking for every kind of place
    all_kinds = {c: r.model_copy(update={"weight": 0.45}) for c, r in main_map["scenes"].items()}
    cmp_settings = settings_from({"models": [*compare, "scenes"], "tiles": 1}, settings) if compare else None
    cmp_map: dict[str, dict[str, EvidenceRule]] = {**evidence_map(compare), "scenes": all_kinds} if compare else {}
    runs: list[dict[str, float]] = []
    l2_seen: Counter[float] = Counter()
    for n, seed in enumerate(args.seeds):
        res_main: list[AuditResult | None] = [None] * len(rows)
        res_cmp: list[AuditResult | None] = [None] * len(rows)
        alone: list[tuple[bool, bool]] = [(False, False)] * len(rows)
        for test in stratified_folds(labels, args.cv, seed):
            train = np.setdiff1d(np.arange(len(rows)), test)
            train_lab = [labels[i] for i in train]
            l2 = args.l2 if args.l2 is not None else choose_l2(x[train], train_lab, seed=seed)
            l2_seen[l2] += 1
            head = train_head(x[train], train_lab, l2=l2)
            clf = SceneClassifier(entry, head, features=feats)  # type: ignore[arg-type]
            auditor = Auditor(main_settings, {**{m: detectors[m] for m in scene_with}, "scenes": clf}, evidence=main_map)
            p_none = head.proba(x[test])[:, head.classes.index(NONE)]
            for j, i in enumerate(test):
                res_main[i] = audit_images(auditor, [rows[i]], images)[0]
                alone[i] = (truth[i], bool(p_none[j] < 0.5))
            if cmp_settings is not None:
                cmp = Auditor(cmp_settings, {**{m: detectors[m] for m in compare}, "scenes": clf}, evidence=cmp_map)
                for i in test:
                    res_cmp[i] = audit_images(cmp, [rows[i]], images)[0]
        ap_, ar, *_ = _prf(alone)
        title = f"{' + '.join(scene_with)} (tiles {settings.tiles}) + scenes [{args.classes}] ({args.cv}-fold stratified CV, seed {seed})"
        done = [res for res in res_main if res]
        if n == 0:
            print(f"\nscene classifier alone, {args.cv}-fold stratified CV, seed {seed}: precision {ap_:.3f}  recall {ar:.3f}")
            sp, sr = report(title, rows, done)
        else:
            sp, sr, *_ = _prf(_pairs(rows, done))
        run = {"seed": seed, "alone_p": ap_, "alone_r": ar, "p": sp, "r": sr}
        if cmp_settings is not None:
            run["cmp_p"], run["cmp_r"], *_ = _prf(_pairs(rows, [res for res in res_cmp if res]))
        runs.append(run)
    print(f"\nscene features: {ft * 1000:.0f} ms/photo; L2 chosen in the training folds: "
          + ", ".join(f"{k:g} x{v}" for k, v in sorted(l2_seen.items())))
    print(f"detector-only ({', '.join(det_settings.models)}, tiles {settings.tiles}): P {p:.3f} R {r:.3f}")
    head_cols = f"{'CV seed':>8s} {'scenes alone P':>15s} {'R':>6s} {'detectors+scenes P':>19s} {'R':>6s}"
    if cmp_settings is not None:
        head_cols += f" {'yolox-nano+scenes(all kinds) P':>31s} {'R':>6s}"
    print(head_cols)
    for run in runs:
        line = f"{run['seed']:8d} {run['alone_p']:15.3f} {run['alone_r']:6.3f} {run['p']:19.3f} {run['r']:6.3f}"
        if cmp_settings is not None:
            line += f" {run['cmp_p']:31.3f} {run['cmp_r']:6.3f}"
        print(line)
    print(f"mean +- std over {len(runs)} seed(s):")
    print(f"  scenes alone:           P {_mean_std([x_['alone_p'] for x_ in runs])}  R {_mean_std([x_['alone_r'] for x_ in runs])}")
    print(f"  detectors + scenes:     P {_mean_std([x_['p'] for x_ in runs])}  R {_mean_std([x_['r'] for x_ in runs])}")
    if cmp_settings is not None:
        print(f"  yolox-nano + scenes(all kinds): P {_mean_std([x_['cmp_p'] for x_ in runs])}  R {_mean_std([x_['cmp_r'] for x_ in runs])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
