"""Retention (Art. 17-18): holds on important footage, purges with tombstones, file integrity.

* `hold`: footage marked important is kept at least `HOLD_DAYS` (730) days from its recording.
* `purge`: segments recorded more than N days ago are deleted with their sidecars; held ones
  before their time are refused (and the refusal registered); each deletion leaves a `tombstone`
  entry with the files' names and hashes and who deleted them.
* `verify_files`: every registered, not deleted segment and sidecar still has the hashes
  registered at recording time (originals not altered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from masking.errors import ConfigError, VaultError
from masking.vault._codec import iso, now_utc, operator, parse_iso, sha256_file
from masking.vault.register import Entry
from masking.vault.vault import Segment, Vault

HOLD_DAYS = 730


def hold(vault: Vault, video: Path, reason: str) -> Entry:
    """Mark a recorded segment important: kept until HOLD_DAYS after it was recorded."""
    if not reason.strip():
        raise ConfigError("--reason: say why the footage is kept (case, incident, request)")
    seg = vault.find_segment(video)
    until = parse_iso(seg.entry.at) + timedelta(days=HOLD_DAYS)
    return vault.register.append("hold", {"segment_seq": seg.seq, "file": seg.body["file"], "reason": reason,
                                          "until": iso(until), "by": operator()}, seg.entry.camera)


@dataclass
class PurgeResult:
    deleted: list[Segment] = field(default_factory=list)
    refused: list[Segment] = field(default_factory=list)


def purge(vault: Vault, older_than_days: float, now: datetime | None = None) -> PurgeResult:
    """Delete segments recorded more than `older_than_days` ago, except held ones before their time."""
    if older_than_days < 0:
        raise ConfigError("--older-than: must be >= 0 days")
    now = now or now_utc()
    cutoff = now - timedelta(days=older_than_days)
    result = PurgeResult()
    for seg in vault.segments():
        if seg.purged or parse_iso(seg.entry.at) > cutoff:
            continue
        if seg.held_until is not None and now < parse_iso(seg.held_until):
            vault.register.append("purge_refused", {"segment_seq": seg.seq, "file": seg.body["file"],
                                                    "held_until": seg.held_until, "by": operator()}, seg.entry.camera)
            result.refused.append(seg)
            continue
        found = {}
        for key, path in (("video", seg.path), ("sidecar", seg.sidecar)):
            found[key] = path.is_file()
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise VaultError(f"{path}: cannot delete: {exc.strerror or exc}") from exc
        vault.register.append("tombstone", {
            "segment_seq": seg.seq, "file": seg.body["file"], "path": seg.body["path"], "sha256": seg.body["sha256"],
            "sidecar": seg.body["sidecar"], "sidecar_sha256": seg.body["sidecar_sha256"], "found": found,
            "reason": f"retention: recorded more than {older_than_days:g} days ago", "by": operator()}, seg.entry.camera)
        result.deleted.append(seg)
    return result


def verify_files(vault: Vault) -> list[str]:
    """Problems with the registered files (missing, or hashes differing from the register)."""
    problems = []
    for seg in vault.segments():
        if seg.purged:
            continue
        for path, key in ((seg.path, "sha256"), (seg.sidecar, "sidecar_sha256")):
            if not path.is_file():
                problems.append(f"{path}: missing (registered as entry {seg.seq}, never purged)")
            elif sha256_file(path) != seg.body[key]:
                problems.append(f"{path}: modified since it was recorded (register entry {seg.seq})")
    return problems
