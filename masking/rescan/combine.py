"""A camera's verdict from its items' audit results.

Each item (a snapshot, a clip, a stream sample) is audited on its own by `masking.audit`; a camera
is as bad as its worst item: violation > review > compliant. Items that failed after all retries
make the camera `failed` unless another item already shows a violation or review (a failure cannot
make a camera look compliant); items not yet audited (a run stopped by `--max-items`) make it
`pending` in the same way. The deciding item (worst verdict, highest confidence; for compliant
the least confident) gives the category, article, reason and recommendation; the evidence and
proposed masks of every item are kept, each tagged with its `input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_RANK = {"violation": 4, "review": 3, "failed": 2, "pending": 1, "compliant": 0}


def _item_view(item: dict[str, Any]) -> dict[str, Any]:
    res = item.get("result") or {}
    return {
        "item_id": item["item_id"],
        "input": item["source"],
        "kind": item["kind"],
        "status": item["status"],
        "attempts": item.get("attempts", 0),
        "error": item.get("error"),
        "duration_s": None if item.get("duration_s") is None else round(float(item["duration_s"]), 4),
        "verdict": res.get("verdict"),
        "category": res.get("category"),
        "confidence": res.get("confidence"),
        "frames_sampled": res.get("frames_sampled"),
    }


def combine_results(camera_id: str, site: str | None, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The camera object of results.json from its items.

    `items`: dicts with item_id, source, kind, status (`done`/`failed`/...), attempts, error,
    duration_s and, when done, `result` (the `AuditResult.to_dict()` of `masking audit --json`).
    """
    done = [it for it in items if it["status"] == "done" and it.get("result")]
    failed = [it for it in items if it["status"] == "failed" or (it["status"] == "done" and not it.get("result"))]
    pending = [it for it in items if it["status"] in ("pending", "running")]
    verdict = max((it["result"]["verdict"] for it in done), key=_RANK.__getitem__, default="compliant")
    if failed and _RANK[verdict] < _RANK["failed"]:
        verdict = "failed"
    elif pending and _RANK[verdict] < _RANK["pending"]:
        verdict = "pending"
    camera: dict[str, Any] = {
        "camera_id": camera_id,
        "site": site,
        "verdict": verdict,
        "category": None,
        "confidence": None,
        "article": None,
        "reason": "",
        "recommendation": "inspect",
        "hidden_share": 0.0,
        "deciding_input": None,
        "items_total": len(items),
        "items_done": len(done),
        "items_failed": len(failed),
        "items_pending": len(pending),
    }
    if verdict == "pending":
        camera["reason"] = f"{len(pending)} of {len(items)} item(s) not audited yet (run the rescan again)"
    elif verdict == "failed":
        first = next((it for it in failed if it.get("error")), None)
        camera["reason"] = f"{len(failed)} of {len(items)} item(s) could not be audited" + (
            f"; first error: {first['error']}" if first else ""
        )
    else:
        same = [it["result"] for it in done if it["result"]["verdict"] == verdict]
        pick = min if verdict == "compliant" else max
        decider = pick(same, key=lambda r: float(r.get("confidence") or 0.0))
        camera.update(
            category=decider.get("category"),
            confidence=decider.get("confidence"),
            article=decider.get("article"),
            reason=decider.get("reason", ""),
            recommendation=decider.get("recommendation", "none"),
            deciding_input=decider.get("input"),
        )
    camera["hidden_share"] = max((float(it["result"].get("hidden_share") or 0.0) for it in done), default=0.0)
    camera["evidence"] = [{**ev, "input": it["source"]} for it in done for ev in it["result"].get("evidence", [])]
    camera["proposed_masks"] = [
        {**m, "input": it["source"]} for it in done for m in it["result"].get("proposed_masks", [])
    ]
    camera["items"] = [_item_view(it) for it in items]
    return camera


def deciding_item(camera: dict[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The item whose audit decided the camera's verdict (for its thumbnail); else the first done one."""
    for it in items:
        if it["source"] == camera.get("deciding_input") and it["status"] == "done":
            return it
    return next((it for it in items if it["status"] == "done"), None)
