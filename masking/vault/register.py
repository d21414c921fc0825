"""The access register: an append-only, hash-chained SQLite log with signed checkpoints.

Every entry (a recorded segment, an unmask request granted or refused, a hold, an export, a
deletion) gets the next sequence number and

    digest = SHA-256(canonical JSON {seq, at, kind, camera, body})
    hash   = SHA-256("masking-register-v1\\0" || previous entry's hash || digest)

(the first entry's previous hash is 32 zero bytes). A checkpoint signs (Ed25519) the vault id, the
number of entries it covers and the hash of the last one. Entries are checkpointed in the same
transaction that appends them whenever a signer is at hand: by the recorder key at recording time,
by the vault key when custodians are present; so an entry not covered by a checkpoint is itself a
finding. `verify` reports, by sequence number: an edited entry (its hash no longer matches), a
deleted, inserted or reordered one (the chain breaks), a whole suffix re-hashed without a signing
key (a checkpoint no longer matches), and a cut tail (a checkpoint covers more entries than remain).
A register rolled back to an older consistent state is caught by comparing with the checkpoint
written into every export (`verify_against`). SQLite triggers refuse UPDATE and DELETE, so no
ordinary client changes history by accident; the hashes and signatures catch the rest.

Exports carry an excerpt: the entries they concern in full, every other entry as its digest only,
enough to recompute the chain up to the checkpoint without revealing other footage's records.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masking.errors import VaultError
from masking.vault._codec import b64, canonical, iso, now_utc, unb64
from masking.vault.keys import Signer, VaultConfig

ZERO = "00" * 32
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, camera TEXT,
    body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY, n INTEGER NOT NULL, head TEXT NOT NULL, at TEXT NOT NULL,
    signer TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_append_only_u BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the access register is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_append_only_d BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the access register is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_u BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the access register is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_d BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the access register is append-only'); END;
"""


def chain_hash(prev: str, digest: bytes) -> str:
    return hashlib.sha256(b"masking-register-v1\0" + bytes.fromhex(prev) + digest).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    kind: str
    camera: str | None
    body: dict[str, Any]
    prev: str = ZERO
    hash: str = ""

    def content(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "camera": self.camera, "body": self.body}

    def digest(self) -> bytes:
        return hashlib.sha256(canonical(self.content())).digest()


@dataclass(frozen=True)
class Checkpoint:
    n: int
    head: str
    at: str
    signer: str
    signature: bytes

    @staticmethod
    def message(vault_id: str, n: int, head: str, at: str, signer: str) -> bytes:
        return b"masking-register-checkpoint-v1\0" + canonical(
            {"vault_id": vault_id, "n": n, "head": head, "at": at, "signer": signer})

    @classmethod
    def make(cls, signer: Signer, vault_id: str, n: int, head: str) -> Checkpoint:
        at = iso(now_utc())
        return cls(n, head, at, signer.name, signer.sign(cls.message(vault_id, n, head, at, signer.name)))

    def valid(self, config: VaultConfig) -> bool:
        return config.verify(self.signer, self.signature,
                             self.message(config.vault_id, self.n, self.head, self.at, self.signer))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "head": self.head, "at": self.at, "signer": self.signer, "signature": b64(self.signature)}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Checkpoint:
        try:
            return cls(int(d["n"]), str(d["head"]), str(d["at"]), str(d["signer"]), unb64(d["signature"], where))
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultError(f"{where}: expected a checkpoint {{n, head, at, signer, signature}}") from exc


def checkpoint_problems(cps: Sequence[Checkpoint], hashes: Sequence[str], config: VaultConfig) -> list[str]:
    """What is wrong between the checkpoints and the entries' chain hashes (`hashes[i]` = entry i+1)."""
    problems = []
    covered = 0
    for i, cp in enumerate(cps, 1):
        if not cp.valid(config):
            problems.append(f"checkpoint #{i} (over {cp.n} entries): signature does not verify (forged or altered)")
            continue
        if cp.n > len(hashes):
            problems.append(f"register truncated: checkpoint #{i} covers {cp.n} entries, only {len(hashes)} remain "
                            f"(entries {len(hashes) + 1}..{cp.n} were cut)")
        elif cp.head != hashes[cp.n - 1]:
            problems.append(f"entries 1..{cp.n} no longer match checkpoint #{i} signed at {cp.at} "
                            "(history rewritten and re-hashed without the signing key)")
        covered = max(covered, cp.n)
    if covered < len(hashes):
        problems.append(f"entries {covered + 1}..{len(hashes)} are not covered by a signed checkpoint")
    return problems


def _sig(text: object) -> bytes:
    """A stored signature; an unreadable one becomes empty (and then fails verification, reported)."""
    try:
        return unb64(text, "checkpoint signature")
    except VaultError:
        return b""


class Register:
    """One vault's register (`register.db`). Thread-safe; each call opens its own connection."""

    def __init__(self, path: Path, config: VaultConfig, signer: Signer | None = None) -> None:
        self.path = path
        self.config = config
        self.signer = signer  # signs a checkpoint with every append (the recorder key, usually)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise VaultError(f"{self.path}: cannot open the access register: {exc}") from exc
        return con

    def append(self, kind: str, body: dict[str, Any], camera: str | None = None,
               signer: Signer | None = None) -> Entry:
        """Append one entry (and a checkpoint over everything, signed by `signer` or the default)."""
        signer = signer or self.signer
        with self._lock:
            con = self._connect()
            try:
                con.execute("BEGIN IMMEDIATE")
                row = con.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, ZERO)
                e = Entry(seq, iso(now_utc()), kind, camera, json.loads(canonical(body)), prev)
                e = Entry(**{**e.__dict__, "hash": chain_hash(prev, e.digest())})
                con.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (e.seq, e.at, e.kind, e.camera, canonical(e.body).decode(), e.prev, e.hash))
                if signer is not None:
                    self._insert_checkpoint(con, Checkpoint.make(signer, self.config.vault_id, seq, e.hash))
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise VaultError(f"{self.path}: cannot append to the access register: {exc}") from exc
            finally:
                con.close()
        return e

    @staticmethod
    def _insert_checkpoint(con: sqlite3.Connection, cp: Checkpoint) -> None:
        con.execute("INSERT INTO checkpoints (n, head, at, signer, signature) VALUES (?, ?, ?, ?, ?)",
                    (cp.n, cp.head, cp.at, cp.signer, b64(cp.signature)))

    def checkpoint(self, signer: Signer) -> Checkpoint:
        """Sign a checkpoint over every entry so far."""
        with self._lock:
            con = self._connect()
            try:
                con.execute("BEGIN IMMEDIATE")
                row = con.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
                if row is None:
                    raise VaultError(f"{self.path}: the register is empty")
                cp = Checkpoint.make(signer, self.config.vault_id, row[0], row[1])
                self._insert_checkpoint(con, cp)
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                raise VaultError(f"{self.path}: cannot write a checkpoint: {exc}") from exc
            finally:
                con.close()
        return cp

    def _query(self, sql: str, what: str) -> list[Any]:
        con = self._connect()
        try:
            return con.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise VaultError(f"{self.path}: cannot read the {what}: {exc}") from exc
        finally:
            con.close()

    def entries(self) -> list[Entry]:
        """Every entry in storage order (as stored: `verify` says whether they are genuine)."""
        out = []
        for seq, at, kind, camera, body, prev, h in self._query(
                "SELECT seq, at, kind, camera, body, prev, hash FROM entries ORDER BY rowid", "access register"):
            try:
                parsed = json.loads(body)
            except (TypeError, json.JSONDecodeError):
                parsed = {"unreadable": str(body)}
            out.append(Entry(int(seq), str(at), str(kind), camera, parsed, str(prev), str(h)))
        return out

    def checkpoints(self) -> list[Checkpoint]:
        rows = self._query("SELECT n, head, at, signer, signature FROM checkpoints ORDER BY id", "checkpoints")
        return [Checkpoint(int(n), str(h), str(at), str(s), _sig(sig)) for n, h, at, s, sig in rows]

    def verify(self) -> list[str]:
        """Every problem found (empty: the register is intact and fully checkpointed)."""
        entries = self.entries()
        problems = []
        prev = ZERO
        for i, e in enumerate(entries, 1):
            if e.seq != i:
                problems.append(f"entry {i}: found entry {e.seq} in its place (entries deleted, inserted or reordered)")
            if e.prev != prev:
                problems.append(f"entry {e.seq}: does not link to the entry before it (deleted, inserted or reordered)")
            if chain_hash(e.prev, e.digest()) != e.hash:
                problems.append(f"entry {e.seq}: content does not match its hash (edited)")
            prev = e.hash
        return problems + checkpoint_problems(self.checkpoints(), [e.hash for e in entries], self.config)

    def verify_against(self, checkpoint: Checkpoint) -> list[str]:
        """Whether this register still holds the history an export's checkpoint certified."""
        if not checkpoint.valid(self.config):
            return ["the export's checkpoint is not signed by this vault"]
        entries = self.entries()
        if len(entries) < checkpoint.n:
            return [f"register rolled back: the export certified {checkpoint.n} entries, the register holds {len(entries)}"]
        if entries[checkpoint.n - 1].hash != checkpoint.head:
            return [f"register rewritten: entry {checkpoint.n} differs from the one the export certified"]
        return []

    def excerpt(self, keep: Iterable[int], upto: int) -> list[dict[str, Any]]:
        """Entries 1..`upto` for an export: those in `keep` in full, the others as digests."""
        wanted = set(keep)
        return [e.content() if e.seq in wanted else {"seq": e.seq, "digest": e.digest().hex()}
                for e in self.entries() if e.seq <= upto]


def excerpt_problems(rows: Sequence[Any], cp: Checkpoint, config: VaultConfig) -> tuple[list[str], dict[int, Entry]]:
    """Check an export's register excerpt against its checkpoint; returns problems and the full entries."""
    problems: list[str] = []
    full: dict[int, Entry] = {}
    prev = ZERO
    hashes = []
    for i, row in enumerate(rows, 1):
        try:
            if "digest" in row:
                digest = bytes.fromhex(row["digest"])
                seq = int(row["seq"])
            else:
                e = Entry(int(row["seq"]), str(row["at"]), str(row["kind"]), row["camera"], dict(row["body"]))
                digest, seq = e.digest(), e.seq
                full[seq] = e
        except (KeyError, TypeError, ValueError):
            problems.append(f"register entry {i}: malformed")
            return problems, full
        if seq != i:
            problems.append(f"register entry {i}: found entry {seq} in its place")
        prev = chain_hash(prev, digest)
        hashes.append(prev)
    if len(rows) > cp.n:
        problems.append(f"register excerpt holds {len(rows)} entries, its checkpoint covers {cp.n}")
    problems += [p for p in checkpoint_problems([cp], hashes, config) if "not covered" not in p]
    return problems, full
