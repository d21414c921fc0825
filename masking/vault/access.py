"""Lawful access (Art. 21-22): an unmask request is checked, unlocked, authenticated and registered.

`authorize` refuses (raising `AccessRefused`, exit status 4) when any of these fails, in this
order, and writes the refusal with its reason to the register before raising:

1. the request: a requester, at least two distinct staff, a purpose and an approval document;
2. the custodians: K distinct custodians of this vault, each with the right passphrase;
3. the footage: every masked video is a segment registered in this vault (same SHA-256), its
   sealed sidecar authenticates record by record (a failure names the segment and frame) and is
   the very sidecar registered at recording time (a replayed or replaced one is refused).

Only then is the grant registered (signed by the vault key, which the custodians just unlocked),
before any pixel is restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masking.errors import AccessRefused, TamperError, VaultError
from masking.vault._codec import operator, sha256_file
from masking.vault.keys import PassphraseSource, Unlocked, terminal_passphrase
from masking.vault.register import Entry
from masking.vault.seal import SidecarReader, sidecar_path
from masking.vault.vault import Segment, Vault


@dataclass(frozen=True)
class AccessRequest:
    """Who asks, who witnesses, why, on whose approval, and which custodians unlock."""

    requester: str
    staff: tuple[str, ...]
    purpose: str
    approval: str
    custodians: tuple[str, ...]
    destination: str = ""
    scope: dict[str, Any] = field(default_factory=dict)  # frames / start / end restrictions

    def fields(self) -> dict[str, Any]:
        return {"requester": self.requester, "staff": list(self.staff), "purpose": self.purpose,
                "approval": self.approval, "custodians": list(self.custodians), "destination": self.destination,
                "scope": self.scope, "by": operator()}


def check_request(req: AccessRequest) -> None:
    """The Art. 21-22 formalities; `AccessRefused` naming the first one missing."""
    if not req.requester.strip():
        raise AccessRefused("no requester: --requester \"name, unit, ID no.\" is required")
    staff = [" ".join(s.split()).lower() for s in req.staff if s.strip()]
    if len(set(staff)) < 2:
        raise AccessRefused(f"{len(set(staff))} distinct staff given: at least two staff must be present "
                            "(--staff \"name, ID no.\" twice)")
    if not req.purpose.strip():
        raise AccessRefused("no purpose: --purpose is required")
    if not req.approval.strip():
        raise AccessRefused("no approval: --approval \"document reference, approving officer\" is required")


@dataclass(frozen=True)
class Grant:
    unlocked: Unlocked
    footage: list[tuple[Segment, SidecarReader]]
    entry: Entry


def registered_segment(vault: Vault, video: Path) -> Segment:
    """The registered segment `video` is, unaltered; `AccessRefused` otherwise."""
    try:
        seg = vault.find_segment(video)
    except VaultError as exc:
        raise AccessRefused(str(exc)) from exc
    if not video.is_file() or sha256_file(video) != seg.body["sha256"]:
        raise TamperError(f"segment {seg.body['file']}: {video} differs from the video registered at recording "
                          "time (altered)")
    return seg


def check_sidecar(seg: Segment, side: Path) -> None:
    """`side` is the very sidecar registered with `seg`; `TamperError` otherwise."""
    if not side.is_file():
        raise TamperError(f"segment {seg.body['file']}: its sealed sidecar {side} is missing")
    if sha256_file(side) != seg.body["sidecar_sha256"]:
        raise TamperError(f"segment {seg.body['file']}: {side.name} is not the sidecar registered at recording time "
                          "(altered, replaced or replayed)")


def open_footage(vault: Vault, video: Path, unlocked: Unlocked) -> tuple[Segment, SidecarReader]:
    """The registered segment of `video` and its authenticated sidecar; `AccessRefused` otherwise.
    The sidecar is authenticated record by record first, so a tampered one is named down to the frame."""
    seg = registered_segment(vault, video)
    side = sidecar_path(video)
    reader = SidecarReader(side, vault.config, unlocked.sealing)
    reader.authenticate()
    check_sidecar(seg, side)
    return seg, reader


def _camera_of(vault: Vault, videos: Sequence[Path]) -> str | None:
    """The camera of the first registered video, for the register entry (None when unknown)."""
    for v in videos:
        try:
            return vault.find_segment(v).entry.camera
        except VaultError:
            continue
    return None


def authorize(vault: Vault, req: AccessRequest, videos: Sequence[Path], action: str = "unmask",
              passphrase: PassphraseSource = terminal_passphrase) -> Grant:
    """Check, unlock, authenticate and register a request (see the module docstring)."""
    targets = [str(v) for v in videos]
    camera = _camera_of(vault, videos)
    try:
        check_request(req)
        unlocked = vault.unlock(req.custodians, passphrase)
        footage = [open_footage(vault, v, unlocked) for v in videos]
    except AccessRefused as exc:
        vault.register.append(action, {**req.fields(), "outcome": "refused", "reason": str(exc), "targets": targets},
                              camera)
        raise
    entry = vault.register.append(action, {
        **req.fields(), "outcome": "granted", "targets": targets,
        "segments": [{"seq": s.seq, "file": s.body["file"], "camera": s.entry.camera} for s, _ in footage],
    }, camera, signer=unlocked.signer)
    return Grant(unlocked, footage, entry)
