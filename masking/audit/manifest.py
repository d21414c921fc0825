"""Labelled snapshots: a `manifest.csv` (file, label, prohibited, art7_category, ...) beside images.

Used to train the scene classifier (`masking scenes train`) and to measure audit quality
(benchmarks/audit_quality.py). `file` is relative to the manifest's folder; `prohibited` is
yes/no/ambiguous; `art7_category` is an Art. 7 category for `yes` rows (or `none`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from masking.art7 import CATEGORIES
from masking.errors import InputError

_REQUIRED = ("file", "prohibited")


@dataclass(frozen=True)
class ManifestRow:
    """One labelled snapshot."""

    path: Path
    label: str
    prohibited: str  # yes | no | ambiguous
    category: str  # an Art. 7 category, or "none"


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """All rows of a manifest; `InputError` naming the file, line and field on a bad row."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.csv"
    if not p.is_file():
        raise InputError(f"{p}: no such manifest (expected a CSV with columns file, prohibited, art7_category)")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{p}: missing column(s) {missing}; found {reader.fieldnames}")
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{p}: cannot read manifest: {exc}") from exc
    rows: list[ManifestRow] = []
    for line, r in enumerate(raw, start=2):
        prohibited = (r.get("prohibited") or "").strip().lower()
        if prohibited not in ("yes", "no", "ambiguous"):
            raise InputError(f"{p}, line {line}: prohibited must be yes, no or ambiguous, got {prohibited!r}")
        category = (r.get("art7_category") or "none").strip() or "none"
        if prohibited == "yes" and category not in CATEGORIES:
            raise InputError(
                f"{p}, line {line}: art7_category must be one of {', '.join(CATEGORIES)} for a prohibited row, "
                f"got {category!r}"
            )
        file = (r.get("file") or "").strip()
        if not file:
            raise InputError(f"{p}, line {line}: empty `file`")
        rows.append(ManifestRow(p.parent / file, (r.get("label") or "").strip(), prohibited, category))
    if not rows:
        raise InputError(f"{p}: manifest has no rows")
    return rows
