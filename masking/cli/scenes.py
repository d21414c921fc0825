"""`masking scenes train MANIFEST`: retrain the fusion verdict on a site's own labelled snapshots;
`masking scenes train-head MANIFEST`: train the (older, opt-in) scene classifier head."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `scenes` sub-command."""
    p = sub.add_parser(
        "scenes",
        help="Scene evidence for audits: retrain the fusion verdict (or a scene head) on your own labelled snapshots.",
        description="`train`: the fusion verdict (logistic model over YOLOX-Nano boxes and the scene models' "
        "evidence, see docs/audit.md) fitted on your photos. `train-head`: the older scene classifier head "
        "(YOLOX-Nano backbone features), used by `masking audit --verdict rule --models ... scenes`.",
    )
    ssub = p.add_subparsers(dest="scenes_command", metavar="ACTION")
    f = ssub.add_parser(
        "train",
        help="Retrain the fusion verdict on a manifest.csv of labelled snapshots.",
        description="MANIFEST is a CSV (or a folder holding manifest.csv) with columns file (relative to the "
        "manifest), prohibited (yes/no/ambiguous) and art7_category. Ambiguous rows are skipped. Runs the "
        "default audit models over every photo (as `masking audit` does, no zones), chooses the L2 penalty and "
        "the number of embedding axes by 5-fold cross-validation (unless --C and --axes are given), prints the "
        "cross-validated precision and recall at the thresholds, fits on every photo and writes the model "
        "(JSON). Use it with `masking audit --fusion-model FILE` (or `fusion_model: FILE` in --settings). "
        "Needs scikit-learn (pip install 'masking[dev]').",
    )
    f.add_argument("manifest", type=Path, metavar="MANIFEST")
    f.add_argument("--out", type=Path, help="Where to write the model (default: fusion.json in the model cache).")
    f.add_argument(
        "--C", dest="c", type=float,
        help="Inverse L2 penalty (default: chosen by cross-validation from 0.01, 0.03, 0.1, 0.3).",
    )
    f.add_argument(
        "--axes", type=int, help="Embedding PCA axes (default: chosen by cross-validation from 0, 16, 32, 64)."
    )
    f.add_argument(
        "--violation", type=float,
        help="P threshold of a violation (default: picked from the cross-validated probabilities, see docs/audit.md).",
    )
    f.add_argument(
        "--review", type=float, help="P threshold of a review (default: picked from the cross-validated probabilities)."
    )
    f.add_argument("--threads", type=int, default=2, help="Threads per model (default 2).")
    f.set_defaults(handler=run_train_fusion)
    t = ssub.add_parser(
        "train-head",
        help="Train the older scene classifier head on a manifest.csv of labelled snapshots.",
        description="MANIFEST is a CSV (or a folder holding manifest.csv) with columns file (relative to the "
        "manifest), prohibited (yes/no/ambiguous) and art7_category (guest_room, dormitory, bathroom, "
        "toilet, shower, changing_room, or none). Ambiguous rows are skipped. Prints a stratified "
        "k-fold cross-validation first, so you see how well it generalises before you rely on it.",
    )
    t.add_argument("manifest", type=Path, metavar="MANIFEST")
    t.add_argument(
        "--out", type=Path,
        help="Where to write the head (.npz). Default: the model cache, where `--models scenes` finds it.",
    )
    t.add_argument("--model", default="scenes", help="Registry entry of the classifier (default `scenes`).")
    t.add_argument(
        "--cv", type=int, default=5,
        help="Folds of the cross-validation printed before training (default 5; 0 skips it).",
    )
    t.add_argument(
        "--classes", choices=("kinds", "categories"), default="kinds",
        help="What the head learns (default kinds: none, sleeping_place, wet_room; pooling the wet rooms "
        "gives them enough examples when you label tens of photos. The registry lets only wet_room "
        "count as evidence: beds are found by the detectors). `categories` learns the six Art. 7 categories.",
    )
    t.add_argument(
        "--l2", type=float,
        help="L2 penalty. Default: chosen from 0.01, 0.1, 1, 10 by 4-fold cross-validation on your photos "
        "(the log-loss of none vs the rest), so it fits the size of your set; the printed cross-validation "
        "repeats that choice inside each fold, so its numbers stay honest.",
    )
    t.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2).")
    t.set_defaults(handler=run_train)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    from masking.cli import EXIT_USAGE

    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_train_fusion(args: argparse.Namespace) -> int:
    """Run the audit models over the photos, choose and fit the fusion model, save it."""
    import numpy as np

    from masking.audit import Auditor, AuditSettings
    from masking.audit.fused import FusedJudge, feature_space
    from masking.audit.fusion import FusionModel, out_of_fold
    from masking.audit.manifest import read_manifest
    from masking.audit.training import train, view_features
    from masking.cli import EXIT_OK, show_progress
    from masking.errors import InputError
    from masking.models.cache import model_dir
    from masking.video.images import read_image

    if args.c is not None and not 0.0 < args.c <= 1000.0:
        raise InputError(f"--C must lie in (0, 1000], got {args.c}")
    if args.axes is not None and not 0 <= args.axes <= 256:
        raise InputError(f"--axes must lie in [0, 256], got {args.axes}")
    for name in ("violation", "review"):
        value = getattr(args, name)
        if value is not None and not 0.0 < value < 1.0:
            raise InputError(f"--{name} must lie in (0, 1), got {value}")
    rows = [r for r in read_manifest(args.manifest) if r.prohibited != "ambiguous"]
    y = [r.prohibited == "yes" for r in rows]
    if all(y) or not any(y):
        raise InputError(f"{args.manifest}: needs both prohibited=yes and prohibited=no rows")
    settings = AuditSettings()
    object_model = settings.models[0]
    space, _ = feature_space(object_model, settings.scene_models)
    names = space.names()
    # features only: a placeholder model (no weights) gives the judge its feature space
    zeros = np.zeros(len(names))
    placeholder = FusionModel(names, zeros, zeros + 1.0, zeros, 0.0, object_model=object_model,
                              scene_models=list(settings.scene_models))
    judge = FusedJudge.for_model(placeholder, settings.scene_models)
    auditor = Auditor(settings, threads=args.threads, judge=judge)
    it = rows
    if show_progress():
        from tqdm import tqdm

        it = tqdm(rows, unit="photo", file=sys.stderr, leave=False)
    raw, emb = [], []
    for r in it:
        features, embedding, _ = view_features(auditor, judge, read_image(r.path))
        raw.append(features)
        emb.append(embedding)
    print(f"{len(rows)} photos: {sum(y)} prohibited, {len(y) - sum(y)} allowed")
    embeddings = np.array(emb, np.float64) if all(e is not None for e in emb) else None
    model = train(
        raw, embeddings, y, names, violation=args.violation, review=args.review, object_model=object_model,
        scene_models=list(settings.scene_models), trained_on=str(args.manifest), c=args.c, axes=args.axes,
    )
    x = np.array([[f[n] for n in names] for f in raw], np.float64)
    k = min(5, sum(y), len(y) - sum(y))
    if k >= 2:
        p = out_of_fold(x, embeddings, np.array(y), names, model.info["C"], model.embedding_axes, k=k)
        truth = np.array(y)
        for what, thr in (("review or violation", model.review), ("violation", model.violation)):
            pos = p >= thr
            tp, fp, fn = int((pos & truth).sum()), int((pos & ~truth).sum()), int((~pos & truth).sum())
            prec = tp / (tp + fp) if tp + fp else 1.0
            rec = tp / (tp + fn) if tp + fn else 1.0
            print(f"{k}-fold cross-validation, {what} (P >= {thr:g}): precision {prec:.3f}, recall {rec:.3f}")
    out = args.out or model_dir() / "fusion.json"
    model.save(out)
    print(f"fusion model (C {model.info['C']:g}, {model.embedding_axes} embedding axes, {len(model.features)} "
          f"features; review from P {model.review:g}, violation from P {model.violation:g}) written to {out}; "
          f"use it with: masking audit --fusion-model {out} ...")
    return EXIT_OK


def run_train(args: argparse.Namespace) -> int:
    """Extract features, cross-validate, train on everything, save the head."""
    from dataclasses import replace

    import numpy as np

    from masking.audit.manifest import read_manifest
    from masking.audit.scenes import (
        NONE,
        SceneFeatures,
        choose_l2,
        cross_validate,
        head_path,
        scene_label,
        train_head,
    )
    from masking.cli import EXIT_OK, show_progress
    from masking.errors import InputError
    from masking.models.cache import cached_sha256, verified_model_path
    from masking.models.registry import load_registry
    from masking.paths import refuse_overwrite
    from masking.video.images import read_image

    entry = load_registry().get(args.model)
    if entry.family != "scenes":
        raise InputError(f"--model {args.model!r} is not a scene classifier (family {entry.family!r})")
    if args.l2 is not None and not 0.0 < args.l2 <= 1000.0:
        raise InputError(f"--l2 must lie in (0, 1000], got {args.l2}")
    rows = [r for r in read_manifest(args.manifest) if r.prohibited != "ambiguous"]
    refuse_overwrite([args.out], [args.manifest, *(r.path for r in rows)])
    labels = [scene_label(r.category, r.prohibited, args.classes) for r in rows]
    classes = sorted(set(labels))
    if NONE not in classes or len(classes) < 2:
        raise InputError(f"{args.manifest}: needs both prohibited=yes and prohibited=no rows; got classes {classes}")
    feats = SceneFeatures(entry, threads=args.threads)
    it = rows
    if show_progress():
        from tqdm import tqdm

        it = tqdm(rows, unit="photo", file=sys.stderr, leave=False)
    x = np.concatenate([feats(read_image(r.path)) for r in it])
    counts = {c: labels.count(c) for c in classes}
    print(f"{len(rows)} photos: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    if args.cv:
        k = min(args.cv, len(rows))  # classes rarer than k simply miss some folds
        if k < 2:
            print(f"cross-validation skipped: --cv {args.cv} needs at least 2 folds")
        else:
            p = cross_validate(x, labels, k=k, l2=args.l2) >= 0.5
            y = np.array([c != NONE for c in labels])
            tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
            prec = tp / (tp + fp) if tp + fp else 1.0
            rec = tp / (tp + fn) if tp + fn else 1.0
            print(f"{k}-fold stratified cross-validation (prohibited vs not, P >= 0.5): precision {prec:.3f}, recall {rec:.3f}")
    l2 = args.l2 if args.l2 is not None else choose_l2(x, labels)
    head = train_head(x, labels, l2=l2, feature_names=feats.feature_names)
    head = replace(head, backbone_sha256=cached_sha256(verified_model_path(entry.name)))
    out = args.out or head_path(entry)
    head.save(out)
    print(f"scene head ({', '.join(head.classes)}; l2 {l2:g}) written to {out}")
    return EXIT_OK
