"""A vault folder opened for use: its public configuration, its register, and segment look-ups.

The register is the source of truth about footage: a `segment` entry for each recorded file
(with the hashes of the masked video and its sidecar), `hold` entries, `tombstone` entries for
deleted files. This module answers "which recorded segment is this file" and "what is its state".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masking.errors import VaultError
from masking.vault._codec import operator, sha256_file
from masking.vault.keys import (
    REGISTER_FILE,
    PassphraseSource,
    Signer,
    Unlocked,
    VaultConfig,
    create_vault,
    load_config,
    load_recorder_signer,
    terminal_passphrase,
    unlock,
)
from masking.vault.register import Entry, Register


@dataclass(frozen=True)
class Segment:
    """A recorded segment as registered, and what happened to it since."""

    entry: Entry
    held_until: str | None
    purged: bool

    @property
    def seq(self) -> int:
        return self.entry.seq

    @property
    def body(self) -> dict[str, Any]:
        return self.entry.body

    @property
    def path(self) -> Path:
        return Path(self.body["path"])

    @property
    def sidecar(self) -> Path:
        return Path(self.body["sidecar_path"])


class Vault:
    """An existing vault folder (`masking vault init` made it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config: VaultConfig = load_config(self.path)
        self.recorder: Signer | None = load_recorder_signer(self.path, self.config)
        if not (self.path / REGISTER_FILE).is_file():
            raise VaultError(f"{self.path}: the access register {REGISTER_FILE} is missing")
        self.register = Register(self.path / REGISTER_FILE, self.config, self.recorder)

    def unlock(self, custodians: Sequence[str], passphrase: PassphraseSource = terminal_passphrase) -> Unlocked:
        return unlock(self.path, self.config, custodians, passphrase)

    def segments(self, entries: list[Entry] | None = None) -> list[Segment]:
        """Every registered segment with its hold and deletion state."""
        entries = self.register.entries() if entries is None else entries
        held: dict[int, str] = {}
        purged: set[int] = set()
        for e in entries:
            if e.kind == "hold":
                held[int(e.body["segment_seq"])] = max(held.get(int(e.body["segment_seq"]), ""), str(e.body["until"]))
            elif e.kind == "tombstone":
                purged.add(int(e.body["segment_seq"]))
        return [Segment(e, held.get(e.seq), e.seq in purged) for e in entries if e.kind == "segment"]

    def find_segment(self, path: Path) -> Segment:
        """The registered segment a video file is: by its hash (files may move), else by its path."""
        segs = [s for s in self.segments() if not s.purged]
        if path.is_file():
            digest = sha256_file(path)
            by_hash = [s for s in segs if s.body["sha256"] == digest]
            if by_hash:
                return by_hash[-1]
        resolved = str(path.resolve())
        by_path = [s for s in segs if s.body["path"] == resolved]
        if by_path:
            return by_path[-1]
        raise VaultError(f"{path}: not a segment recorded in this vault's register (unknown or altered video)")


def init_vault(path: Path, custodians: Sequence[str], threshold: int,
               passphrase: PassphraseSource = terminal_passphrase) -> Vault:
    """Create a vault; its register starts with a `vault_init` entry checkpointed by the vault key."""
    config, signer = create_vault(path, custodians, threshold, passphrase)
    register = Register(path / REGISTER_FILE, config)
    register.append("vault_init", {"custodians": [c.name for c in config.custodians], "threshold": threshold,
                                   "by": operator()}, signer=signer)
    return Vault(path)
