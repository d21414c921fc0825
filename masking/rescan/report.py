"""Rescan outputs: `results.json`, `results.csv` and a self-contained `report.html`.

Everything here formats a `RescanResult`; nothing is computed that the JSON does not already hold.
The JSON and CSV schemas are versioned (`RESULTS_SCHEMA_VERSION`); see the README, "Rescans".
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import time
from pathlib import Path
from typing import Any

from masking._atomic import atomic_write
from masking.audit.result import zones_snippet
from masking.rescan.runner import RESULTS_SCHEMA_VERSION, RescanResult

CSV_FIELDS = (
    "schema_version", "camera_id", "site", "verdict", "category", "confidence", "recommendation",
    "hidden_share", "items_total", "items_done", "items_failed", "items_pending", "evidence_unmasked",
    "evidence_masked", "proposed_masks_count", "deciding_input", "zones_file", "reason",
    "evidence", "proposed_masks", "items",
)


def results_document(res: RescanResult, store_path: str | None = None) -> dict[str, Any]:
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


def write_outputs(res: RescanResult, out_dir: str | Path, store_path: str | None = None) -> dict[str, Path]:
    """Write results.json, results.csv and report.html into `out_dir`; return their paths."""
    out = Path(out_dir)
    doc = results_document(res, store_path)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "html": out / "report.html"}
    atomic_write(paths["json"], (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode())
    atomic_write(paths["csv"], csv_text(res).encode())
    atomic_write(paths["html"], render_html(doc, res.thumbnails).encode())
    return paths


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .3em}.meta{color:#666;margin-bottom:1em}
.cards{display:flex;gap:.8em;flex-wrap:wrap;margin-bottom:1.2em}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;min-width:7em}
.card b{display:block;font-size:1.6em}
table{border-collapse:collapse;width:100%;margin-bottom:1em}
th,td{border-bottom:1px solid #eee;padding:.3em .5em;text-align:left;vertical-align:top}
th.s{cursor:pointer;user-select:none;background:#f6f6f6}th.s:after{content:" \\21C5";color:#aaa}
.v{font-weight:bold;padding:.1em .4em;border-radius:4px;color:#fff}
.violation{background:#c62828}.review{background:#ef6c00}.compliant{background:#2e7d32}
.failed{background:#555}.pending{background:#888}
img.t{max-width:160px;max-height:120px}img.big{max-width:480px}
section{border-top:2px solid #ddd;padding-top:.5em;margin-top:1.5em}
pre{background:#f6f6f6;padding:.5em;overflow:auto}.err{color:#b00}
"""

_JS = """
document.querySelectorAll('img[data-from]').forEach(function(i){var s=document.getElementById(i.dataset.from);if(s)i.src=s.src;});
document.querySelectorAll('th.s').forEach(function(th){th.addEventListener('click',function(){
 var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){
  var a=x.cells[i].dataset.k||x.cells[i].textContent,c=y.cells[i].dataset.k||y.cells[i].textContent;
  var na=parseFloat(a),nc=parseFloat(c);var r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c);
  return asc?r:-r;});rows.forEach(function(r){b.appendChild(r);});});});
"""

_VERDICT_ORDER = {"violation": 0, "review": 1, "failed": 2, "pending": 3, "compliant": 4}


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _table(headers: tuple[str, ...], rows_html: str) -> str:
    """A table with a header row over already-escaped `<tr>` rows."""
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + f"</tr>{rows_html}</table>"


def _anchor(camera_id: str) -> str:
    return "cam-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in camera_id)


def _img(thumb: bytes | None, camera_id: str) -> str:
    """The table thumbnail: the only copy of the image in the page (details reuse it by script)."""
    if not thumb:
        return "<span class=meta>no image</span>"
    return (f'<img class=t id="img-{_anchor(camera_id)}" alt="evidence" '
            f'src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}">')


def _big(thumb: bytes | None, camera_id: str) -> str:
    if not thumb:
        return "<span class=meta>no image (no item could be audited)</span>"
    return f'<img class=big alt="evidence" data-from="img-{_anchor(camera_id)}">'


def _fmt(v: Any, digits: int = 2) -> str:
    return "" if v is None else f"{float(v):.{digits}f}"


def _detail(c: dict[str, Any], thumb: bytes | None) -> str:
    parts = [f'<section id="{_anchor(c["camera_id"])}"><h2>{_e(c["camera_id"])} '
             f'<span class="v {_e(c["verdict"])}">{_e(c["verdict"])}</span></h2>']
    parts.append(f"<p>{_big(thumb, c['camera_id'])}</p>")
    parts.append("<p>" + "<br>".join(filter(None, [
        f"<b>Site:</b> {_e(c.get('site'))}" if c.get("site") else "",
        f"<b>Category:</b> {_e(c.get('category') or '-')} &nbsp; <b>Confidence:</b> {_fmt(c.get('confidence'))}",
        f"<b>Recommendation:</b> {_e(c.get('recommendation'))}"
        + (f" (proposed masks hide {float(c['hidden_share']):.0%} of the view)" if c.get("proposed_masks") else ""),
        f"<b>Reason:</b> {_e(c.get('reason'))}",
        f"<b>Rule:</b> {_e(c.get('article'))}" if c.get("article") else "",
        f"<b>Zones file:</b> {_e(c.get('zones_file'))}" if c.get("zones_file") else "",
    ])) + "</p>")
    if c["evidence"]:
        rows = "".join(
            f"<tr><td>{_e(ev.get('class_name'))}</td><td>{_e(ev.get('category'))}</td><td>{_fmt(ev.get('score'))}</td>"
            f"<td>{_fmt(ev.get('strength'))}</td><td>{'yes' if ev.get('masked') else 'no'}</td>"
            f"<td>{_e(ev.get('frame'))}</td><td>{_e(ev.get('input'))}</td></tr>"
            for ev in c["evidence"]
        )
        parts.append("<h3>Evidence</h3>" + _table(("class", "category", "score", "strength", "masked", "frame", "input"), rows))
    if c["proposed_masks"]:
        snippet = zones_snippet(c["proposed_masks"])
        parts.append("<h3>Proposed masks</h3><p>Paste under the camera in its zones file:</p>"
                     f"<pre>{_e(snippet)}</pre>")
    rows = "".join(
        f"<tr><td>{_e(it['input'])}</td><td>{_e(it['kind'])}</td><td>{_e(it['status'])}</td>"
        f"<td>{_e(it.get('verdict') or '')}</td><td>{_fmt(it.get('confidence'))}</td><td>{_e(it.get('attempts'))}</td>"
        f"<td>{_fmt(it.get('duration_s'), 3)}</td><td class=err>{_e(it.get('error') or '')}</td></tr>"
        for it in c["items"]
    )
    parts.append("<h3>Items</h3>" + _table(
        ("input", "kind", "status", "verdict", "confidence", "attempts", "seconds", "error"), rows))
    parts.append('<p><a href="#top">back to the table</a></p></section>')
    return "".join(parts)


def render_html(doc: dict[str, Any], thumbnails: dict[str, bytes]) -> str:
    """The self-contained report: summary, sortable table with thumbnails, per-camera details."""
    s = doc["summary"]
    run = doc["run"]
    cards = "".join(
        f'<div class=card><b>{s.get(k, 0)}</b>{label}</div>'
        for k, label in (("cameras", "cameras scanned"), ("violation", "violations"), ("review", "reviews"),
                         ("compliant", "compliant"), ("failed", "failed"), ("pending", "pending"))
        if k != "pending" or s.get("pending")
    )
    cams = sorted(doc["cameras"], key=lambda c: (_VERDICT_ORDER.get(c["verdict"], 9), -(c.get("confidence") or 0)))
    rows = []
    for c in cams:
        unmasked = sum(1 for e in c["evidence"] if not e.get("masked"))
        rows.append(
            f'<tr><td>{_img(thumbnails.get(c["camera_id"]), c["camera_id"])}</td>'
            f'<td><a href="#{_anchor(c["camera_id"])}">{_e(c["camera_id"])}</a></td><td>{_e(c.get("site") or "")}</td>'
            f'<td data-k="{_VERDICT_ORDER.get(c["verdict"], 9)}"><span class="v {_e(c["verdict"])}">{_e(c["verdict"])}</span></td>'
            f'<td>{_e(c.get("category") or "")}</td><td>{_fmt(c.get("confidence"))}</td>'
            f'<td data-k="{unmasked}">{unmasked} / {len(c["evidence"]) - unmasked}</td>'
            f'<td>{len(c["proposed_masks"])}</td><td>{_e(c.get("recommendation"))}</td>'
            f'<td data-k="{c["items_failed"]}">{c["items_done"]} / {c["items_total"]}'
            + (f' <span class=err>({c["items_failed"]} failed)</span>' if c["items_failed"] else "")
            + "</td></tr>"
        )
    headers = "<th>view</th>" + "".join(f"<th class=s>{h}</th>" for h in (
        "camera", "site", "verdict", "category", "confidence", "evidence unmasked / masked",
        "proposed masks", "recommendation", "items done / total"))
    details = "".join(_detail(c, thumbnails.get(c["camera_id"])) for c in cams)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>masking rescan report</title>"
        f"<style>{_CSS}</style></head><body id=top>"
        "<h1>Camera fleet rescan</h1>"
        f'<div class=meta>Generated {_e(doc["generated_at"])} &middot; run {_e(run["run_id"])} ({_e(run["status"])}, '
        f'{_e(run["engine"])} engine) &middot; fleet {_e(run["fleet"])} &middot; {s.get("items", 0)} item(s), '
        f'{s.get("items_failed", 0)} failed &middot; models {_e(", ".join(doc["settings"].get("models", [])))}</div>'
        f"<div class=cards>{cards}</div>"
        f"<table id=cams><thead><tr>{headers}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{details}<script>{_JS}</script></body></html>\n"
    )
