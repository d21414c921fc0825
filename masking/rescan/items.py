"""Work items: one per (camera, footage file or stream), with the keys that make rescans resumable.

An item is finished for good when the store holds it as `done` under the same key: the item id
hashes (camera id, source, config key) and the config key hashes the audit settings, the camera's
zones and the item's sampling parameters; the file's sha256 (`content_hash`) must match too, so an
edited or replaced file is audited again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from masking.digest import content_sha256
from masking.errors import MaskingError
from masking.media import is_stream_url, media_kind
from masking.rescan.manifest import Fleet, FleetCamera

log = logging.getLogger(__name__)

# Bumped when the per-item result format changes: old results are then redone.
RESULT_VERSION = 1

Hasher = Callable[[Path], str]
Prober = Callable[[Path], "float | None"]


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: a camera's image, video (or a time segment of one) or stream sample.

    `error` is set for footage that could not even be planned (missing file, glob matching
    nothing): such items are recorded as failed without being dispatched.
    """

    item_id: str
    camera_id: str
    source: str  # file path or stream URL
    kind: str  # image | video | stream | missing
    content_hash: str | None
    config_key: str
    stream_seconds: float | None = None
    error: str | None = None
    segment: tuple[float, float | None] | None = None  # [start, end) s from the first frame; end None: to the end

    @property
    def label(self) -> str:
        """The item's input name: the source, plus `#t=START,END` (media-fragment style) for a segment."""
        return segment_label(self.source, self.segment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def segment_label(source: str, segment: tuple[float, float | None] | list[Any] | None) -> str:
    """`source`, or `source#t=START,END` for a segment (`#t=START` when it runs to the end)."""
    if not segment:
        return source
    start, end = segment
    return f"{source}#t={start:g}" + (f",{end:g}" if end is not None else "")


def settings_key(settings: dict[str, Any]) -> str:
    """A stable hash of the audit settings (canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"v{RESULT_VERSION}:{text}".encode()).hexdigest()[:16]


def video_seconds(path: Path) -> float | None:
    """A clip's duration from its container header, or None when it does not say."""
    from masking.video.reader import VideoReader

    with VideoReader(path) as reader:
        return reader.info.duration_s


def _segments(duration: float | None, seconds: float | None) -> list[tuple[float, float | None] | None]:
    """[start, end) windows of `seconds` covering a clip; the last one runs to the clip's end (it
    absorbs a short tail, and a header that under-counts frames loses nothing)."""
    if not seconds or duration is None or duration <= seconds * 1.5:
        return [None]
    n = max(1, round(duration / seconds))
    starts = [round(k * seconds, 3) for k in range(n)]
    return [(starts[k], starts[k + 1] if k + 1 < n else None) for k in range(n)]


def _config_key(skey: str, camera: FleetCamera, kind: str, segment_s: float | None = None) -> str:
    extra = f":{camera.stream_seconds}" if kind == "stream" else ""
    if kind == "video" and segment_s:
        extra = f":seg{segment_s}"
    return hashlib.sha256(f"{skey}:{camera.zones_key()}:{kind}{extra}".encode()).hexdigest()[:16]


def item_id(camera_id: str, source: str, config_key: str) -> str:
    """The primary key of an item in the store."""
    return hashlib.sha256(f"{camera_id}\0{source}\0{config_key}".encode()).hexdigest()[:24]


def _expand_entry(entry: str) -> tuple[list[tuple[str, str]], str | None]:
    """(source, kind) pairs of one footage entry, or an error saying why there are none."""
    if is_stream_url(entry):
        return [(entry, "stream")], None
    if any(ch in entry for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(entry, recursive=True))
        found: list[tuple[str, str]] = [(str(m.resolve()), k) for m in matches if m.is_file() and (k := media_kind(m))]
        return (found, None) if found else ([], f"glob {entry} matched no image or video file")
    p = Path(entry)
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        found = [(str(q.resolve()), k) for q in files if (k := media_kind(q))]
        others = len(files) - len(found)
        if others:
            log.debug("%s: %d non-media file(s) skipped", p, others)
        return (found, None) if found else ([], f"folder {entry} holds no image or video file")
    if p.is_file():
        kind = media_kind(p)
        if kind is None:
            return [], f"{entry}: not an image or video file (unknown extension {p.suffix!r})"
        return [(str(p.resolve()), kind)], None
    return [], f"{entry}: no such file or folder"


def plan_items(
    fleet: Fleet,
    settings: dict[str, Any],
    hasher: Hasher = content_sha256,
    segment_seconds: float | None = None,
    prober: Prober = video_seconds,
) -> list[WorkItem]:
    """Every work item of a fleet, in manifest order; unreadable footage becomes failed items.

    With `segment_seconds`, clips longer than 1.5 segments are split into items of about that
    length (each audited on its own; the camera takes the worst), so a long recording is many
    small retryable items instead of one big one.
    """
    skey = settings_key(settings)
    items: list[WorkItem] = []
    for cam in fleet.cameras:
        seen: set[str] = set()
        for entry in cam.footage:
            pairs, error = _expand_entry(entry)
            if error is not None:
                ck = _config_key(skey, cam, "missing")
                items.append(WorkItem(item_id(cam.camera_id, entry, ck), cam.camera_id, entry, "missing",
                                      None, ck, error=error))
                continue
            for source, kind in pairs:
                if source in seen:
                    continue
                seen.add(source)
                ck = _config_key(skey, cam, kind, segment_seconds)
                content: str | None = None
                err: str | None = None
                windows: list[tuple[float, float | None] | None] = [None]
                if kind != "stream":
                    try:
                        content = hasher(Path(source))
                    except OSError as exc:
                        err = f"{source}: cannot read: {exc.strerror or exc}"
                if kind == "video" and segment_seconds and err is None:
                    try:
                        windows = _segments(prober(Path(source)), segment_seconds)
                    except MaskingError as exc:  # unreadable clip: one item, whose audit reports the error
                        log.warning("%s: cannot read its duration (%s); not split into segments", source, exc)
                for window in windows:
                    it = WorkItem(
                        "", cam.camera_id, source, kind if err is None else "missing", content, ck,
                        stream_seconds=cam.stream_seconds if kind == "stream" else None, error=err, segment=window,
                    )
                    items.append(replace(it, item_id=item_id(cam.camera_id, it.label, ck)))
    return items
