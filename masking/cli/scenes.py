"""`masking scenes train MANIFEST [--out FILE]`: train the scene classifier on labelled snapshots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `scenes` sub-command."""
    p = sub.add_parser(
        "scenes",
        help="Scene classifier for audits: train it on your own labelled snapshots.",
        description="A light head (logistic regression, numpy) on YOLOX-Nano backbone features, used by "
        "`masking audit --models ... scenes` as evidence like any detector.",
    )
    ssub = p.add_subparsers(dest="scenes_command", metavar="ACTION")
    t = ssub.add_parser(
        "train",
        help="Train the head on a manifest.csv of labelled snapshots.",
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
