"""The `--report` HTML page: one self-contained page per run (no external assets, all text escaped).

Per input: the annotated snapshot (zones drawn, evidence boxes coloured by category, proposed
masks dashed) embedded as a base64 JPEG, the verdict, the article it rests on, the evidence table
and the proposed masks as zones-file YAML.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from masking._atomic import atomic_write
from masking.annotate import draw_boxes, draw_polygon, draw_zones
from masking.audit.overlay import draw_segmentation
from masking.audit.result import AuditResult, zones_snippet
from masking.config.zones import Camera
from masking.errors import OutputError

# BGR colours per Art. 7 category (boxes), and the same as CSS hex.
CATEGORY_COLORS: dict[str, tuple[int, int, int]] = {
    "guest_room": (60, 60, 220),
    "dormitory": (30, 120, 240),
    "bathroom": (200, 140, 20),
    "toilet": (180, 40, 150),
    "shower": (220, 200, 30),
    "changing_room": (60, 170, 60),
}
_OTHER = (160, 160, 160)
_MASKED = (110, 110, 110)
_PROPOSAL = (0, 230, 255)
_VERDICT_CSS = {"violation": "#c62828", "review": "#ef6c00", "compliant": "#2e7d32"}
_MAX_SIDE = 1280


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def annotate(result: AuditResult, camera: Camera | None) -> npt.NDArray[np.uint8] | None:
    """The snapshot with zones, the snapshot frame's evidence and the proposed masks drawn."""
    if result.snapshot is None:
        return None
    img = draw_zones(result.snapshot, camera) if camera is not None else result.snapshot.copy()
    img = draw_segmentation(img, result.segmentation)  # coarse overlay of the segmented evidence classes
    h, w = img.shape[:2]
    items = [e for e in result.evidence if e.frame == result.snapshot_frame]
    if items:
        colors = [_MASKED if e.masked else CATEGORY_COLORS.get(e.category, _OTHER) for e in items]
        labels = [f"{e.id} {e.class_name} {e.score:.2f}{' masked' if e.masked else ''}" for e in items]
        thickness = max(2, int(round(min(h, w) / 360)))
        draw_boxes(img, np.array([e.xyxy for e in items]), colors, labels, thickness)
    for m in result.proposed_masks:
        pts = np.asarray(m.polygon, np.float64) * np.array([w, h], np.float64)
        draw_polygon(img, pts, _PROPOSAL, dashed=True, thickness=max(2, int(round(min(h, w) / 300))))
    return img


def _jpeg_b64(image: npt.NDArray[np.uint8]) -> str:
    h, w = image.shape[:2]
    scale = min(1.0, _MAX_SIDE / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OutputError("cannot encode the report snapshot as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _section(result: AuditResult, camera: Camera | None) -> str:
    e = html.escape
    color = _VERDICT_CSS.get(result.verdict, "#333")
    parts = [
        "<section>",
        f"<h2>{e(result.input)}</h2>",
        f'<p><span class="verdict" style="background:{color}">{e(result.verdict.upper())}</span> '
        f"category <b>{e(result.category or '-')}</b>, confidence {result.confidence:.2f}, "
        f"recommendation <b>{e(result.recommendation)}</b>; camera {e(result.camera_id or '(no zones)')}; "
        f"{result.frames_sampled} frame(s) sampled"
        + (f", evidence in frame(s) {e(', '.join(str(i) for i in result.evidence_frames))}" if result.evidence_frames else "")
        + "</p>",
        f"<p>{e(result.reason)}</p>",
        f'<blockquote>{e(result.article)}</blockquote>',
    ]
    img = annotate(result, camera)
    if img is not None:
        parts.append(
            f'<figure><img alt="annotated snapshot of {e(result.input)}" src="data:image/jpeg;base64,{_jpeg_b64(img)}">'
            f"<figcaption>frame {e(str(result.snapshot_frame))}: zones tinted, evidence boxed by category "
            "(grey = already masked), proposed masks dashed</figcaption></figure>"
        )
    if result.evidence:
        parts.append(
            "<table><thead><tr><th>id</th><th>frame</th><th>class</th><th>model</th><th>category</th>"
            "<th>score</th><th>strength</th><th>box (px)</th><th>masked share</th><th>masked</th></tr></thead><tbody>"
        )
        for ev in result.evidence:
            swatch = _hex(CATEGORY_COLORS.get(ev.category, _OTHER))
            box = ", ".join(f"{v:.0f}" for v in ev.xyxy)
            parts.append(
                f"<tr><td>{e(ev.id)}</td><td>{ev.frame}</td><td>{e(ev.class_name)}</td><td>{e(ev.model)}</td>"
                f'<td><span class="sw" style="background:{swatch}"></span>{e(ev.category)}</td>'
                f"<td>{ev.score:.2f}</td><td>{ev.strength:.2f}</td><td>{e(box)}</td>"
                f"<td>{ev.masked_share:.0%}</td><td>{'yes' if ev.masked else 'no'}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No Art. 7 evidence found.</p>")
    if result.proposed_masks:
        parts.append(
            f"<h3>Proposed masks (hide {result.hidden_share:.0%} of the view with the existing masks)</h3>"
            f"<p>Paste under the camera in the zones file:</p><pre>{e(zones_snippet([m.to_dict() for m in result.proposed_masks]))}</pre>"
        )
    parts.append("</section>")
    return "\n".join(parts)


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
section{border-top:2px solid #ddd;padding-top:.5em;margin-top:1.5em}
.verdict{color:#fff;padding:.15em .5em;border-radius:.3em;font-weight:bold}
blockquote{border-left:4px solid #bbb;margin:.5em 0;padding:.2em .8em;color:#444}
img{max-width:100%;height:auto;border:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
pre{background:#f5f5f5;padding:.5em;overflow-x:auto}
"""


def render_html(
    results: Sequence[AuditResult], cameras: Mapping[str, Camera | None], title: str = "Art. 7 view audit"
) -> str:
    """The whole page. `cameras` maps each result's input to the camera it was audited against."""
    e = html.escape
    counts = {v: sum(r.verdict == v for r in results) for v in ("violation", "review", "compliant")}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1><p>{len(results)} input(s): {counts['violation']} violation, {counts['review']} review, "
        f"{counts['compliant']} compliant. Generated {e(stamp)}.</p>"
    )
    body = "\n".join(_section(r, cameras.get(r.input)) for r in results)
    return f"{head}\n{body}\n</body></html>\n"


def write_report(path: Path, results: Sequence[AuditResult], cameras: Mapping[str, Camera | None]) -> None:
    """Write the page atomically (temp file, then rename)."""
    atomic_write(path, render_html(results, cameras), "report")
