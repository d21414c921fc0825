"""Shared fixtures: paths to the real evaluation data and models beside the checkout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT.parent / "shared").resolve()  # resolved, like the paths rescans store
EVAL_DEV = SHARED / "eval" / "dev"
VIDEOS = SHARED / "eval" / "videos"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (the checkout expects ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def office_clip() -> Path:
    """1280x720, 6 s, people walking indoors."""
    return _need(VIDEOS / "office_v001.mp4")


@pytest.fixture(scope="session")
def entrance_clip() -> Path:
    """640x360, 15 s, elevated CCTV view of a mall entrance with a crowd."""
    return _need(VIDEOS / "entrance_v002.mp4")


@pytest.fixture(scope="session")
def dev_dir() -> Path:
    return _need(EVAL_DEV)


@pytest.fixture(scope="session")
def dev_manifest(dev_dir: Path) -> list[dict[str, str]]:
    """Rows of ../shared/eval/dev/manifest.csv (file, label, prohibited, art7_category, ...)."""
    with (dev_dir / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def corner_zones(tmp_path: Path) -> Path:
    """A zones file: camera `cam` with one privacy zone over the top-left 0.2 x 0.2 of the frame."""
    from stream_helpers import CORNER_ZONES

    p = tmp_path / "zones.yaml"
    p.write_text(CORNER_ZONES)
    return p
def write_manifest(path: Path, rows: list[dict[str, str]], base: Path) -> Path:
    """A manifest.csv at `path` naming `rows` (dev manifest rows) by absolute path under `base`."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "prohibited", "art7_category"])
        for r in rows:
            w.writerow([str(base / r["file"]), r["label"], r["prohibited"], r["art7_category"]])
    return path
