"""Audit quality and cost on the labelled photos: the fused verdict beside the earlier rule.

    .venv/bin/python benchmarks/audit_quality.py [--train ../shared/eval/train] [--dev ../shared/eval/dev]
        [--seeds 0 1 2 3 4] [--cache /tmp/audit_features.pkl] [--threads 2] [--old-pair]

A prediction is positive when the verdict is `violation` or `review`; the truth is positive when
`prohibited` is `yes` (`ambiguous` rows are excluded). Each photo is audited as a camera with no zones.
Printed:
  1. dev, end to end with the default settings (`masking audit`: YOLOX-Nano whole view + 2x2 tiles,
     the three scene models, the shipped fusion model, trained on train/ only): precision, recall,
     the confusion table per label, recall per Art. 7 category, the false-alarm rate per allowed place
     type, the mistakes with what decided them; time per photo and per model;
  2. the same photos with the earlier rule (`verdict: rule`): YOLOX-Nano alone (the permissive
     default's detector) and, with --old-pair, the earlier default pair YOLOX-Nano + YOLO11n-int8;
  3. the fusion refitted on train/ features with the shipped recipe (must give the shipped numbers);
  4. cross-validation over train + dev: stratified 5-fold, one run per seed, the shipped model's
     hyper-parameters and thresholds, mean and spread (std) of precision and recall.
Step 4 also prints recall per Art. 7 category and the false-alarm rate per allowed place type over
all 332 photos (more photos per category than dev alone). Features of every photo are computed once (`--cache` keeps them between runs; the cache is keyed
by the photo's path, size and mtime). Timings: time.perf_counter around each model call; on a
machine shared with other work they are noisy, so compare them within one run.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masking.audit import AuditFrame, Auditor, AuditResult, AuditSettings, settings_from  # noqa: E402
from masking.audit.fused import FusedJudge  # noqa: E402
from masking.audit.fusion import FusionModel, fit_fusion, stratified_folds  # noqa: E402
from masking.audit.manifest import ManifestRow, read_manifest  # noqa: E402
from masking.audit.scene_evidence import SceneModels, SceneObservation  # noqa: E402
from masking.audit.training import view_features  # noqa: E402
from masking.detect.detections import Detections  # noqa: E402
from masking.video.images import read_image  # noqa: E402

POSITIVE = ("violation", "review")
CATEGORIES = ("guest_room", "dormitory", "bathroom", "toilet", "shower", "changing_room")


class _Timed:
    """A detector that adds its run time to `seconds[name]` and remembers its answers per image."""

    def __init__(self, inner: Any, seconds: dict[str, float]) -> None:
        self.inner, self.seconds = inner, seconds
        self.name, self.class_names = inner.name, inner.class_names
        self.memo: dict[tuple[int, tuple[int, ...]], list[Detections]] = {}

    def detect(self, batch: np.ndarray) -> list[Detections]:
        key = (id(batch.base) if batch.base is not None else id(batch), batch.shape)
        t0 = time.perf_counter()
        out = self.inner.detect(batch)
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - t0
        self.memo[key] = out
        return out  # type: ignore[no-any-return]


class _TimedScenes:
    """Scene models that add each model's run time to `seconds`."""

    def __init__(self, inner: SceneModels, seconds: dict[str, float]) -> None:
        self.inner, self.seconds, self.names = inner, seconds, inner.names

    def observe(self, image: np.ndarray) -> SceneObservation:
        obs = self.inner.observe(image)
        for k, v in obs.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        return obs


def _prf(pairs: list[tuple[bool, bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(t and p for t, p in pairs)
    fp = sum((not t) and p for t, p in pairs)
    fn = sum(t and not p for t, p in pairs)
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0), tp, fp, fn


def report(title: str, rows: list[ManifestRow], verdicts: list[str], notes: list[str] | None = None) -> tuple[float, float]:
    """Confusion table, recall per category, false alarms per allowed place, mistakes."""
    print(f"\n=== {title} ===")
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for row, v in zip(rows, verdicts):
        table[f"{row.label} ({row.prohibited})"][v] += 1
    print(f"{'label (prohibited)':28s} {'violation':>9s} {'review':>9s} {'compliant':>9s}")
    for key in sorted(table, key=lambda k: (not k.endswith("(yes)"), k)):
        c = table[key]
        print(f"{key:28s} {c['violation']:9d} {c['review']:9d} {c['compliant']:9d}")
    pairs = [(r.prohibited == "yes", v in POSITIVE) for r, v in zip(rows, verdicts)]
    prec, rec, tp, fp, fn = _prf(pairs)
    print(f"overall (violation or review): precision {prec:.3f}  recall {rec:.3f}  (tp {tp}, fp {fp}, fn {fn}; n {len(pairs)})")
    sp, sr, *_ = _prf([(r.prohibited == "yes", v == "violation") for r, v in zip(rows, verdicts)])
    print(f"violation only: precision {sp:.3f}  recall {sr:.3f}")
    per_cat = {c: [p for (t, p), r in zip(pairs, rows) if t and r.category == c] for c in CATEGORIES}
    print("recall per Art. 7 category: " + ", ".join(
        f"{c} {sum(v)}/{len(v)}" + (f" ({sum(v) / len(v):.2f})" if v else "") for c, v in per_cat.items()))
    places: dict[str, list[bool]] = defaultdict(list)
    for (t, p), r in zip(pairs, rows):
        if not t:
            places[r.label].append(p)
    print("false alarms per allowed place: " + ", ".join(
        f"{k} {sum(v)}/{len(v)}" for k, v in sorted(places.items())))
    mistakes = [(t, r, v, n) for (t, p), r, v, n in zip(pairs, rows, verdicts, notes or [""] * len(rows)) if t != p]
    if mistakes:
        print("mistakes:")
    for t, r, v, n in mistakes:
        print(f"  {'MISS' if t else 'FALSE ALARM':11s} {r.path.name:26s} {r.label:14s} -> {v:9s} {n}")
    return prec, rec


def _why(res: AuditResult) -> str:
    if res.fusion is None:
        ev = ", ".join(f"{e.class_name}@{e.model} {e.score:.2f}" for e in res.evidence[:4])
        return f"[{ev or 'no evidence'}]"
    top = ", ".join(f"{k} {v:+.2f}" for k, v in list(res.fusion["contributions"].items())[:4])
    return f"P {res.fusion['probability']:.2f} [{top}]"


def _rows(folder: Path) -> list[ManifestRow]:
    return [r for r in read_manifest(folder) if r.prohibited != "ambiguous"]


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def features(rows: list[ManifestRow], auditor: Auditor, judge: FusedJudge, cache: dict[Any, Any]) -> tuple[list[dict[str, float]], np.ndarray]:
    raw, emb = [], []
    for r in rows:
        k = _key(r.path)
        if k not in cache:
            f, e, _ = view_features(auditor, judge, read_image(r.path))
            cache[k] = (f, e)
        raw.append(cache[k][0])
        emb.append(cache[k][1])
    return raw, np.array(emb, np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, default=ROOT.parent / "shared" / "eval" / "train")
    ap.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "eval" / "dev")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="CV seeds over train + dev.")
    ap.add_argument("--cache", type=Path, help="Feature cache file (pickle) kept between runs.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--old-pair", action="store_true", help="Also the earlier default detector pair (AGPL YOLO11n).")
    ap.add_argument(
        "--timing-only", action="store_true",
        help="Only the timings: the default audit per model, and the earlier rule (with --old-pair: both pairs).",
    )
    args = ap.parse_args(argv)

    shipped = FusionModel.load()
    train_rows, dev_rows = _rows(args.train), _rows(args.dev)
    print(f"train: {len(train_rows)} photos ({sum(r.prohibited == 'yes' for r in train_rows)} prohibited); "
          f"dev: {len(dev_rows)} photos ({sum(r.prohibited == 'yes' for r in dev_rows)} prohibited)")
    print(f"shipped fusion model: trained on {shipped.info.get('trained_on')}; C {shipped.info.get('C')}, "
          f"{shipped.embedding_axes} embedding axes, {len(shipped.features)} features; review from P {shipped.review}, "
          f"violation from P {shipped.violation}")

    # 1. dev end to end, default settings, timed per model
    settings = AuditSettings()
    seconds: dict[str, float] = {}
    auditor = Auditor(settings, threads=args.threads)
    auditor.detectors = {m: _Timed(d, seconds) for m, d in auditor.detectors.items()}  # type: ignore[misc]
    auditor.scenes = _TimedScenes(auditor.scenes, seconds)  # type: ignore[arg-type, assignment]
    images = {r.path: read_image(r.path) for r in dev_rows}
    auditor.audit_frames([AuditFrame(images[dev_rows[0].path], 0)], None, "warm-up")  # first-call costs apart
    seconds.clear()
    results: list[AuditResult] = []
    t0 = time.perf_counter()
    for r in dev_rows:
        results.append(auditor.audit_frames([AuditFrame(images[r.path], 0, None)], None, str(r.path)))
    per_photo = (time.perf_counter() - t0) / len(dev_rows)
    p_fused, r_fused = report(
        f"dev, default audit (fusion, models {settings.models} + {settings.scene_models}; {per_photo * 1000:.0f} ms/photo)",
        dev_rows, [x.verdict for x in results], [_why(x) for x in results],
    )
    print(f"\ntime per photo (mean over {len(dev_rows)} dev photos, {args.threads} threads per model): {per_photo * 1000:.0f} ms")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {s / len(dev_rows) * 1000:7.1f} ms" + ("  (whole view + 2x2 tiles)" if name in settings.models else ""))
    rest = per_photo - sum(seconds.values()) / len(dev_rows)
    print(f"  {'features, verdict, masks':24s} {rest * 1000:7.1f} ms")

    # 2. the earlier rule on the same photos, timed in the same run: the ratio to the default audit's
    # time carries over to a quiet machine (the earlier default pair took 122 ms/photo there, 2026-11-29)
    rule_cmp: list[tuple[str, float, float]] = []
    pairs = [["yolox-nano"]] + ([["yolox-nano", "yolo11n-int8"]] if args.old_pair else [])
    for models in pairs:
        st = settings_from({"verdict": "rule", "models": models})
        rule = Auditor(st, threads=args.threads)
        rule.audit_frames([AuditFrame(images[dev_rows[0].path], 0)], None, "warm-up")
        t0 = time.perf_counter()
        verdicts = [rule.audit_frames([AuditFrame(images[r.path], 0)], None, str(r.path)) for r in dev_rows]
        ms = (time.perf_counter() - t0) / len(dev_rows) * 1000
        if args.timing_only:
            print(f"earlier rule, {' + '.join(models)}: {ms:.0f} ms/photo (default audit / this = "
                  f"{per_photo * 1000 / ms:.2f})")
            continue
        p, r_ = report(f"dev, earlier rule ({' + '.join(models)}, tiles {st.tiles}; {ms:.0f} ms/photo; "
                       f"default audit / this = {per_photo * 1000 / ms:.2f})", dev_rows,
                       [v.verdict for v in verdicts], [_why(v) for v in verdicts])
        rule_cmp.append((" + ".join(models), p, r_))
    if args.timing_only:
        return 0

    # 3. features for train and dev; the shipped recipe refitted on train only
    cache: dict[Any, Any] = {}
    if args.cache and args.cache.is_file():
        cache = pickle.loads(args.cache.read_bytes())
    judge = auditor.judge
    assert judge is not None
    auditor.scenes = auditor.scenes.inner  # type: ignore[union-attr]
    t0 = time.perf_counter()
    raw_tr, emb_tr = features(train_rows, auditor, judge, cache)
    raw_dv, emb_dv = features(dev_rows, auditor, judge, cache)
    print(f"\nfeatures of {len(train_rows) + len(dev_rows)} photos in {time.perf_counter() - t0:.0f} s")
    if args.cache:
        args.cache.write_bytes(pickle.dumps(cache))
    names = [n for n in shipped.features if not n.startswith("emb:")]
    x_tr = np.array([[f[n] for n in names] for f in raw_tr])
    x_dv = np.array([[f[n] for n in names] for f in raw_dv])
    y_tr = np.array([r.prohibited == "yes" for r in train_rows])
    y_dv = np.array([r.prohibited == "yes" for r in dev_rows])
    c, axes = float(shipped.info.get("C", 0.1)), shipped.embedding_axes

    def scored(m: FusionModel, x: np.ndarray, e: np.ndarray) -> np.ndarray:
        if m.pca_axes is not None and m.pca_mean is not None:
            x = np.concatenate([x, (e - m.pca_mean) @ m.pca_axes.T], axis=1)
        return m.proba(x)

    refit = fit_fusion(x_tr, emb_tr, y_tr, names, c, axes)
    p_dev = scored(refit, x_dv, emb_dv)
    rp, rr, *_ = _prf(list(zip(y_dv.tolist(), (p_dev >= shipped.review).tolist())))
    print(f"refitted on train/ with C {c:g}, {axes} axes: dev precision {rp:.3f}, recall {rr:.3f} (P >= {shipped.review})")
    q = np.clip(p_dev, 1e-6, 1 - 1e-6)
    print(f"calibration on dev: log-loss {-np.mean(np.where(y_dv, np.log(q), np.log(1 - q))):.3f}, "
          f"Brier {np.mean((p_dev - y_dv) ** 2):.3f}; P bin: photos, mean P, share prohibited")
    for lo, hi in ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)):
        sel = (p_dev >= lo) & (p_dev < hi)
        if sel.any():
            print(f"  [{lo:.1f}, {min(hi, 1.0):.1f}): {int(sel.sum()):3d}, {p_dev[sel].mean():.2f}, {y_dv[sel].mean():.2f}")

    # 4. cross-validation over train + dev
    x_all = np.concatenate([x_tr, x_dv])
    e_all = np.concatenate([emb_tr, emb_dv])
    y_all = np.concatenate([y_tr, y_dv])
    all_rows = train_rows + dev_rows
    runs = []
    flagged: dict[str, list[float]] = defaultdict(list)  # label or category -> share flagged, per seed
    for seed in args.seeds:
        p = np.zeros(len(y_all))
        for test in stratified_folds(y_all, 5, seed):
            train = np.setdiff1d(np.arange(len(y_all)), test)
            p[test] = scored(fit_fusion(x_all[train], e_all[train], y_all[train], names, c, axes), x_all[test], e_all[test])
        pos = p >= shipped.review
        prec, rec, *_ = _prf(list(zip(y_all.tolist(), pos.tolist())))
        runs.append((seed, prec, rec))
        print(f"  CV train+dev, seed {seed}: precision {prec:.3f}  recall {rec:.3f}")
        groups: dict[str, list[bool]] = defaultdict(list)
        for row, hit in zip(all_rows, pos.tolist()):
            groups[row.category if row.prohibited == "yes" else f"allowed:{row.label}"].append(hit)
        for g, hits in groups.items():
            flagged[g].append(float(np.mean(hits)))
    ps, rs = [r[1] for r in runs], [r[2] for r in runs]
    size = Counter(r.category if r.prohibited == "yes" else f"allowed:{r.label}" for r in all_rows)
    print("CV train+dev, recall per Art. 7 category (mean over seeds): " + ", ".join(
        f"{c} {np.mean(flagged[c]):.2f} (n {size[c]})" for c in CATEGORIES if c in flagged))
    print("CV train+dev, false-alarm rate per allowed place (mean over seeds): " + ", ".join(
        f"{g.split(':', 1)[1]} {np.mean(v):.2f} (n {size[g]})" for g, v in sorted(flagged.items()) if g.startswith("allowed:")))

    print("\n=== summary (positive = violation or review) ===")
    print(f"{'configuration':58s} {'precision':>9s} {'recall':>7s}")
    print(f"{'fusion, trained on train/ only, dev (floors 0.92 / 0.92)':58s} {p_fused:9.3f} {r_fused:7.3f}")
    for name, p, r_ in rule_cmp:
        print(f"{'earlier rule, ' + name + ', dev':58s} {p:9.3f} {r_:7.3f}")
    print(f"{f'fusion, 5-fold CV over train+dev, {len(runs)} seeds (mean)':58s} {np.mean(ps):9.3f} {np.mean(rs):7.3f}")
    print(f"{'  spread (std over seeds)':58s} {np.std(ps):9.3f} {np.std(rs):7.3f}")
    print(f"time per photo, default audit: {per_photo * 1000:.0f} ms (limit 400 ms on 2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
