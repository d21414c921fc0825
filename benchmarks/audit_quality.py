"""Audit quality on a labelled folder: confusion table, precision/recall, mistakes with evidence.

    .venv/bin/python benchmarks/audit_quality.py ../shared/eval/dev [--models yolox-nano] [--tiles 2]
        [--cv 5] [--seeds 0 1 2] [--no-scenes] [--set key=value ...]

A prediction is positive when the verdict is `violation` or `review`; the truth is positive when
`prohibited` is `yes` (`ambiguous` rows are excluded). Each image is audited as a camera with no
zones. Two evaluations:
  1. detector-only: the audit with the given detector models (default: the AuditSettings default);
  2. with the scene classifier, by stratified k-fold cross-validation: for each fold a head is
     trained on the other folds' photos only (`masking.audit.scenes.train_head`) and added to the
     detectors as the registry's `scenes` model. Also printed: the classifier alone (P(not none) >= 0.5).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masking.audit import AuditFrame, Auditor, AuditResult, AuditSettings, settings_from  # noqa: E402
from masking.audit.auditor import load_evidence_models  # noqa: E402
from masking.audit.manifest import ManifestRow, read_manifest  # noqa: E402
from masking.audit.scenes import NONE, SceneClassifier, SceneFeatures, stratified_folds, train_head  # noqa: E402
from masking.models.registry import load_registry  # noqa: E402
from masking.video.images import read_image  # noqa: E402

POSITIVE = ("violation", "review")


def _prf(pairs: list[tuple[bool, bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(t and p for t, p in pairs)
    fp = sum((not t) and p for t, p in pairs)
    fn = sum(t and not p for t, p in pairs)
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    return prec, rec, tp, fp, fn


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
    pairs = [(r.prohibited == "yes", res.verdict in POSITIVE) for r, res in zip(rows, results)]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="Folder with manifest.csv and the images it names.")
    ap.add_argument("--models", nargs="+", help="Detector models (default: AuditSettings default).")
    ap.add_argument("--tiles", type=int, help="Tile grid n (default: AuditSettings default).")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Other AuditSettings fields.")
    ap.add_argument("--cv", type=int, default=5, help="Folds for the scene classifier's cross-validation.")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2],
        help="Fold shuffling seeds; the CV is repeated per seed and averaged (the first is shown in full).",
    )
    ap.add_argument("--no-scenes", action="store_true", help="Skip the scene-classifier evaluation.")
    ap.add_argument(
        "--scene-with", nargs="+", default=["yolox-nano"],
        help="Detector models audited together with the scene classifier (default: yolox-nano, the "
        "recommended pairing: the classifier finds the rooms the second detector would add).",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

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
          f"models {settings.models}, tiles {settings.tiles}, violation >= {settings.violation_threshold}, "
          f"review >= {settings.review_threshold}")
    images = {r.path: read_image(r.path) for r in rows}
    detectors = load_evidence_models(settings.models, args.threads, settings.min_score)
    t0 = time.perf_counter()
    base = audit_images(Auditor(settings, detectors), rows, images)
    dt = (time.perf_counter() - t0) / len(rows)
    p, r = report(f"detector-only ({', '.join(settings.models)}; {dt * 1000:.0f} ms/photo)", rows, base)
    if args.no_scenes:
        return 0

    entry = load_registry().get("scenes")
    feats = SceneFeatures(entry, threads=args.threads)
    x = np.concatenate([feats(images[r.path]) for r in rows])
    labels = [r.scene_class for r in rows]
    scene_settings = settings_from({"models": [*args.scene_with, "scenes"]}, settings)
    scene_detectors = {m: detectors[m] for m in args.scene_with if m in detectors}
    scene_detectors.update(load_evidence_models([m for m in args.scene_with if m not in detectors], args.threads, settings.min_score))
    runs: list[tuple[int, float, float, float, float]] = []
    for n, seed in enumerate(args.seeds):
        results: list[AuditResult | None] = [None] * len(rows)
        alone: list[tuple[bool, bool]] = [(False, False)] * len(rows)
        for test in stratified_folds(labels, args.cv, seed):
            train = np.setdiff1d(np.arange(len(rows)), test)
            head = train_head(x[train], [labels[i] for i in train])
            clf = SceneClassifier(entry, head, features=feats)
            auditor = Auditor(scene_settings, {**scene_detectors, "scenes": clf})
            p_none = head.proba(x[test])[:, head.classes.index(NONE)]
            for j, i in enumerate(test):
                results[i] = audit_images(auditor, [rows[i]], images)[0]
                alone[i] = (rows[i].prohibited == "yes", bool(p_none[j] <= 0.5))
        ap_, ar, *_ = _prf(alone)
        title = f"{', '.join(args.scene_with)} + scene classifier ({args.cv}-fold stratified CV, seed {seed})"
        if n == 0:
            print(f"\nscene classifier alone, {args.cv}-fold stratified CV, seed {seed}: precision {ap_:.3f}  recall {ar:.3f}")
            sp, sr = report(title, rows, [res for res in results if res])
        else:
            pairs = [(r.prohibited == "yes", res.verdict in POSITIVE) for r, res in zip(rows, results) if res]
            sp, sr, *_ = _prf(pairs)
        runs.append((seed, ap_, ar, sp, sr))
    print(f"\ndetector-only ({', '.join(settings.models)}): P {p:.3f} R {r:.3f}")
    print(f"{'CV seed':>8s} {'scenes alone P':>15s} {'R':>6s} {'+ ' + '+'.join(args.scene_with) + ' P':>20s} {'R':>6s}")
    for seed, ap_, ar, sp, sr in runs:
        print(f"{seed:8d} {ap_:15.3f} {ar:6.3f} {sp:20.3f} {sr:6.3f}")
    m = np.mean(np.array([run[1:] for run in runs]), axis=0)
    print(f"{'mean':>8s} {m[0]:15.3f} {m[1]:6.3f} {m[2]:20.3f} {m[3]:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
