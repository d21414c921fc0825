"""Rescan outputs: `results.json`, `results.csv` and a self-contained `report.html`.

Everything here formats a `RescanResult`; nothing is computed that the JSON does not already hold.
The JSON and CSV schemas are versioned (`RESULTS_SCHEMA_VERSION`); see docs/rescan.md. The HTML is
rendered by `masking.report` (English or Simplified Chinese); beyond `PAGE_SIZE` cameras it is split
into pages (`report.html`, `report-2.html`, ...).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from masking._atomic import atomic_write
from masking.audit.result import zones_snippet
from masking.report.render import anchors, chunks, navigation, page_paths, render, write_pages
from masking.rescan.runner import RESULTS_SCHEMA_VERSION, RescanResult

CSV_FIELDS = (
    "schema_version", "camera_id", "site", "verdict", "category", "confidence", "recommendation",
    "hidden_share", "items_total", "items_done", "items_failed", "items_pending", "evidence_unmasked",
    "evidence_masked", "proposed_masks_count", "deciding_input", "zones_file", "reason",
    "evidence", "proposed_masks", "items",
)


def rescan_json_document(res: RescanResult, store_path: str | None = None) -> dict[str, Any]:
    """The `results.json` document."""
    from masking.audit import SCHEMA_VERSION as AUDIT_SCHEMA

    return {
        "schema": "masking.rescan.results",
        "schema_version": RESULTS_SCHEMA_VERSION,
        "audit_schema_version": AUDIT_SCHEMA,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": {
            "run_id": res.run_id,
            "status": res.status,
            "engine": res.engine,
            "fleet": res.fleet,
            "store": store_path,
            "elapsed_s": round(res.elapsed_s, 3),
            "items": res.counts,
        },
        "settings": res.settings,
        "summary": res.summary(),
        "cameras": res.cameras,
    }


def csv_text(res: RescanResult) -> str:
    """`results.csv`: one row per camera; evidence, masks and items as JSON cells."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for c in res.cameras:
        w.writerow({
            "schema_version": RESULTS_SCHEMA_VERSION,
            **{k: c.get(k) for k in ("camera_id", "site", "verdict", "category", "confidence", "recommendation",
                                     "hidden_share", "items_total", "items_done", "items_failed", "items_pending",
                                     "deciding_input", "zones_file", "reason")},
            "evidence_unmasked": sum(1 for e in c["evidence"] if not e.get("masked")),
            "evidence_masked": sum(1 for e in c["evidence"] if e.get("masked")),
            "proposed_masks_count": len(c["proposed_masks"]),
            "evidence": json.dumps(c["evidence"], sort_keys=True),
            "proposed_masks": json.dumps(c["proposed_masks"], sort_keys=True),
            "items": json.dumps(c["items"], sort_keys=True),
        })
    return buf.getvalue()


def write_outputs(
    res: RescanResult,
    out_dir: str | Path,
    store_path: str | None = None,
    *,
    lang: str = "en",
    show_unmasked: bool = False,
) -> dict[str, Path]:
    """Write results.json, results.csv and report.html (and report-N.html beyond `PAGE_SIZE`
    cameras) into `out_dir`; return their paths (`html`: the first page, `pages`: all of them)."""
    out = Path(out_dir)
    doc = rescan_json_document(res, store_path)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "html": out / "report.html"}
    atomic_write(paths["json"], (json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode())
    atomic_write(paths["csv"], csv_text(res).encode())
    written = write_pages(render_rescan_pages(doc, res.thumbnails, lang=lang, show_unmasked=show_unmasked,
                                              path=paths["html"]))
    return {**paths, **{f"page{i + 1}": p for i, p in enumerate(written)}}


# --------------------------------------------------------------------------- HTML
_VERDICT_ORDER = {"violation": 0, "review": 1, "failed": 2, "pending": 3, "compliant": 4}


def render_rescan_pages(
    doc: dict[str, Any],
    thumbnails: dict[str, bytes],
    *,
    lang: str = "en",
    show_unmasked: bool = False,
    path: Path = Path("report.html"),
) -> list[tuple[Path, str]]:
    """The report's pages as (file path, HTML): summary, a sortable table with a thumbnail per
    camera, and a section per camera; `PAGE_SIZE` cameras per page, worst first."""
    cams = sorted(doc["cameras"], key=lambda c: (_VERDICT_ORDER.get(c["verdict"], 9), -(c.get("confidence") or 0)))
    ids = anchors([c["camera_id"] for c in cams], "cam")
    entries = []
    for c in cams:
        unmasked = sum(1 for e in c["evidence"] if not e.get("masked"))
        entries.append({
            "camera": c, "anchor": ids[c["camera_id"]], "thumbnail": thumbnails.get(c["camera_id"]),
            "order": _VERDICT_ORDER.get(c["verdict"], 9), "unmasked": unmasked, "masked": len(c["evidence"]) - unmasked,
            "snippet": zones_snippet(c["proposed_masks"]) if c["proposed_masks"] else "",
        })
    pages = chunks(entries)
    paths = page_paths(path, len(entries))
    index: list[dict[str, Any]] = []
    if len(pages) > 1:
        for n, page in enumerate(pages):
            index += [{"camera_id": e["camera"]["camera_id"], "site": e["camera"].get("site"),
                       "verdict": e["camera"]["verdict"], "page": n + 1, "href": f"{paths[n].name}#{e['anchor']}"}
                      for e in page]
    common = {"run": doc["run"], "summary": doc["summary"], "settings": doc["settings"],
              "generated": doc["generated_at"], "privacy": "unmasked" if show_unmasked else "masked"}
    return [
        (paths[n], render("rescan.html.j2", lang, entries=page, pages=navigation(paths, n), page_number=n + 1,
                          index=index if n == 0 else [], **common))
        for n, page in enumerate(pages)
    ]
