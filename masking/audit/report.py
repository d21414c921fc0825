"""The `masking audit --report` HTML: self-contained pages rendered by `masking.report`.

Per input: the snapshot made safe to show (zones masked as recorded, faces blurred; see
`masking.report.pictures`) with zones, evidence boxes and proposed masks drawn, the verdict, the
article it rests on, the evidence table and the proposed masks as zones-file YAML; inputs that
could not be audited are listed with their error. Beyond `PAGE_SIZE` inputs the report is split
into pages (`report.html`, `report-2.html`, ...). English or Simplified Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from masking.audit.result import AuditResult, zones_snippet
from masking.config.zones import Camera
from masking.report.pictures import Picture, PrivacyFilter, report_picture
from masking.report.render import anchors, chunks, navigation, page_paths, render

VERDICTS = ("violation", "review", "compliant")


def audit_picture(result: AuditResult, camera: Camera | None, privacy: PrivacyFilter) -> Picture | None:
    """The report picture of one audit: its snapshot, made safe by `privacy`, with the camera's
    zones, the snapshot frame's evidence and the proposed masks drawn (None without a snapshot)."""
    if result.snapshot is None:
        return None
    shown = [e for e in result.evidence if e.frame == result.snapshot_frame]
    return report_picture(result.snapshot, camera, privacy, shown, [m.polygon for m in result.proposed_masks],
                          segmentation=result.segmentation)


def render_audit_pages(
    results: Sequence[AuditResult],
    pictures: Sequence[Picture | None],
    failures: Sequence[Mapping[str, str]] = (),
    *,
    lang: str = "en",
    zones_file: str | None = None,
    show_unmasked: bool = False,
    path: Path = Path("report.html"),
) -> list[tuple[Path, str]]:
    """The report's pages as (file path, HTML): one per `PAGE_SIZE` results (write them with
    `masking.report.render.write_pages`).

    `pictures[i]` is `results[i]`'s picture (see `audit_picture`); `failures` are
    `{"input", "error"}` of the inputs that could not be audited (listed on the first page).
    """
    if len(pictures) != len(results):
        raise ValueError(f"{len(results)} results but {len(pictures)} pictures")
    docs = [r.to_dict() for r in results]
    keys = [f"{i}:{d['input']}" for i, d in enumerate(docs)]  # an input given twice has two sections
    ids = anchors(keys, "in")
    entries = [
        {"result": d, "anchor": ids[k], "picture": p, "frame": r.snapshot_frame,
         "snippet": zones_snippet(d["proposed_masks"]) if d["proposed_masks"] else ""}
        for d, k, p, r in zip(docs, keys, pictures, results, strict=True)
    ]
    pages = chunks(entries)
    paths = page_paths(path, len(entries))
    counts = {v: sum(d["verdict"] == v for d in docs) for v in VERDICTS}
    counts.update(failed=len(failures), inputs=len(docs) + len(failures))
    index: list[dict[str, Any]] = []
    if len(pages) > 1:
        for n, page in enumerate(pages):
            index += [{"input": e["result"]["input"], "verdict": e["result"]["verdict"], "page": n + 1,
                       "href": f"{paths[n].name}#{e['anchor']}"} for e in page]
    common = {
        "counts": counts, "zones_file": zones_file, "models": docs[0]["models"] if docs else [],
        "privacy": "unmasked" if show_unmasked else "masked",
    }
    return [
        (paths[n], render("audit.html.j2", lang, entries=page, pages=navigation(paths, n), page_number=n + 1,
                          failures=failures if n == 0 else [], index=index if n == 0 else [], **common))
        for n, page in enumerate(pages)
    ]
