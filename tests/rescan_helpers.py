"""Helpers shared by the rescan tests: a fleet manifest of dev photos, the store's item rows."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("bathroom_001", "dining_001", "dorm_room_001", "corridor_001", "classroom_003", "hotel_room_012",
          "shop_001", "office_002")


def write_fleet(path: Path, dev_dir: Path, names: tuple[str, ...] = PHOTOS, extra: list[tuple[str, str]] = ()) -> Path:
    """A CSV manifest with one camera per dev photo (as built from manifest.csv)."""
    rows = {r["file"].split("/")[-1][:-4]: r for r in csv.DictReader((dev_dir / "manifest.csv").open())}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["camera_id", "site", "footage"])
        for n in names:
            w.writerow([n, rows[n]["notes"][:60], str(dev_dir / rows[n]["file"])])
        for cid, footage in extra:
            w.writerow([cid, "", footage])
    return path


def item_rows(store: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(store)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM items ORDER BY camera_id, source")]
    db.close()
    return rows
