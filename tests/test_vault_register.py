"""Keys and custodians (K of N), the access register's mutation corpus, retention."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from vault_helpers import CUSTODIANS, fresh_vault, passphrase, record, vault_template

from masking.errors import AccessRefused, ConfigError, VaultError
from masking.vault._codec import b64, now_utc
from masking.vault.keys import Signer, create_vault
from masking.vault.register import Checkpoint, Entry, chain_hash
from masking.vault.retention import HOLD_DAYS, hold, purge, verify_files
from masking.vault.vault import Vault


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vault_template(tmp_path_factory.mktemp("reg"))


# ---------------------------------------------------------------- keys and custodians
def test_every_set_of_k_custodians_unlocks_and_fewer_never_do(template: Path) -> None:
    vault = Vault(template)
    for combo in itertools.combinations(CUSTODIANS, 2):
        u = vault.unlock(list(combo), passphrase)
        assert u.sealing.public_key().public_bytes_raw() == vault.config.sealing_public_key
        assert u.signer.key.public_key().public_bytes_raw() == vault.config.signing_public_key
    for names, why in ((["alice"], "1 custodian(s) given, this vault needs 2"),
                       ([], "0 custodian(s) given"),
                       (["alice", "ALICE"], "named more than once"),
                       (["alice", "mallory"], "'mallory' is not a custodian")):
        with pytest.raises(AccessRefused, match=re.escape(why)):
            vault.unlock(names, passphrase)
    with pytest.raises(AccessRefused, match="custodian bob: wrong passphrase"):
        vault.unlock(["alice", "bob"], lambda n, c: "guess-guess" if n == "bob" else passphrase(n))


def test_credentials_are_bound_to_their_custodian_and_vault(template: Path, tmp_path: Path) -> None:
    vault = fresh_vault(template, tmp_path / "v")
    creds = vault.path / "custodians"
    shutil.copyfile(creds / "alice.credential", creds / "bob.credential")  # alice's file passed off as bob's
    with pytest.raises(AccessRefused, match="custodian bob: wrong passphrase"):
        vault.unlock(["alice", "bob"], lambda n, c: passphrase("alice"))
    cred = json.loads((creds / "carol.credential").read_text())
    cred["kdf"]["n"] = 2  # a weakened KDF would make guessing cheap
    (creds / "carol.credential").write_text(json.dumps(cred))
    with pytest.raises(AccessRefused, match="weakened scrypt"):
        vault.unlock(["alice", "carol"], passphrase)


def test_recorder_cannot_unmask_and_config_is_certified(template: Path, tmp_path: Path) -> None:
    vault = fresh_vault(template, tmp_path / "v")
    text = (vault.path / "vault.keys").read_text()
    assert "alice-passphrase" not in text and "sealing" not in text  # private keys only under the master key
    cfg = (vault.path / "vault.yaml").read_text()
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    (vault.path / "vault.yaml").write_text(cfg.replace(b64(vault.config.recorder_public_key), b64(other)))
    with pytest.raises(VaultError, match="certificate does not verify"):
        Vault(vault.path)


def test_init_refuses_weak_settings(tmp_path: Path) -> None:
    for names, k, why in ((["a", "b"], 1, "--threshold"), (["a"], 1, "at least two custodians"),
                          (["a", "b", "c"], 4, "--threshold")):
        with pytest.raises(ConfigError, match=why):
            create_vault(tmp_path / "x", names, k, lambda n, c: "long-enough-passphrase")
    with pytest.raises(ConfigError, match="at least 8 characters"):
        create_vault(tmp_path / "x", ["a", "b"], 2, lambda n, c: "short")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        create_vault(tmp_path / "busy", ["a", "b"], 2, lambda n, c: "long-enough-passphrase")


# ---------------------------------------------------------------- register mutation corpus
N_ENTRIES = 8


@pytest.fixture(scope="module")
def register_db(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault whose register holds N_ENTRIES entries, each checkpointed by the recorder key."""
    vault = fresh_vault(template, tmp_path_factory.mktemp("regdb") / "v")
    for i in range(N_ENTRIES - 1):
        vault.register.append("segment" if i % 2 else "hold", {"file": f"seg{i}.mp4", "n": i}, camera="cam1")
    assert len(vault.register.entries()) == N_ENTRIES
    return vault.path


def _sql(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    con = sqlite3.connect(path / "register.db")
    con.execute("DROP TRIGGER IF EXISTS entries_append_only_u")  # an attacker with file access can do this too
    con.execute("DROP TRIGGER IF EXISTS entries_append_only_d")
    con.execute("DROP TRIGGER IF EXISTS checkpoints_append_only_d")
    for s in statements:
        con.execute(s, params if "?" in s else ())
    con.commit()
    con.close()


def _rehash_from(path: Path, seq: int) -> None:
    """Recompute prev/hash of entries seq.. as someone without the signing key can."""
    vault = Vault(path)
    entries = vault.register.entries()
    prev = entries[seq - 2].hash if seq > 1 else "00" * 32
    con = sqlite3.connect(path / "register.db")
    con.execute("DROP TRIGGER IF EXISTS entries_append_only_u")
    for e in entries[seq - 1 :]:
        h = chain_hash(prev, Entry(e.seq, e.at, e.kind, e.camera, e.body).digest())
        con.execute("UPDATE entries SET prev = ?, hash = ? WHERE seq = ?", (prev, h, e.seq))
        prev = h
    con.commit()
    con.close()


Mutation = Callable[[Path], None]


def _edit(seq: int) -> Mutation:
    return lambda p: _sql(p, f"UPDATE entries SET body = '{{\"file\":\"forged.mp4\"}}' WHERE seq = {seq}")


def _delete(seq: int) -> Mutation:
    return lambda p: _sql(p, f"DELETE FROM entries WHERE seq = {seq}")


def _swap(a: int, b: int) -> Mutation:
    cols = "at, kind, camera, body, prev, hash"
    return lambda p: _sql(
        p, "CREATE TEMP TABLE t AS SELECT * FROM entries",
        f"UPDATE entries SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = {b}) WHERE seq = {a}",
        f"UPDATE entries SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = {a}) WHERE seq = {b}")


def _edit_rehash(seq: int) -> Mutation:
    def m(p: Path) -> None:
        _edit(seq)(p)
        _rehash_from(p, seq)
    return m


def _edit_rehash_drop_checkpoints(seq: int) -> Mutation:
    def m(p: Path) -> None:
        _edit_rehash(seq)(p)
        _sql(p, f"DELETE FROM checkpoints WHERE n >= {seq}")
    return m


def _forge_checkpoint(p: Path) -> None:
    _edit_rehash(3)(p)
    vault = Vault(p)
    last = vault.register.entries()[-1]
    fake = Checkpoint.make(Signer("recorder", Ed25519PrivateKey.generate()), vault.config.vault_id, last.seq, last.hash)
    con = sqlite3.connect(p / "register.db")
    con.execute("INSERT INTO checkpoints (n, head, at, signer, signature) VALUES (?, ?, ?, ?, ?)",
                (fake.n, fake.head, fake.at, fake.signer, b64(fake.signature)))
    con.commit()
    con.close()


def _insert(p: Path) -> None:
    _sql(p, "INSERT INTO entries VALUES (99, '2026-01-01T00:00:00Z', 'segment', 'cam1', '{}', '00', '00')")


CORPUS: list[tuple[str, Mutation, str]] = (
    [(f"entry {s} edited", _edit(s), f"entry {s}: content does not match its hash (edited)") for s in range(1, N_ENTRIES + 1)]
    + [(f"entry {s} deleted", _delete(s), f"entry {s}: found entry {s + 1} in its place") for s in range(1, N_ENTRIES)]
    + [(f"entry {N_ENTRIES} (last) deleted", _delete(N_ENTRIES),
        f"checkpoint #{N_ENTRIES} covers {N_ENTRIES} entries, only {N_ENTRIES - 1} remain")]
    + [(f"entries {s} and {s + 1} swapped", _swap(s, s + 1), f"entry {s}: content does not match its hash")
       for s in range(1, N_ENTRIES)]
    + [("tail of 3 cut", lambda p: _sql(p, f"DELETE FROM entries WHERE seq > {N_ENTRIES - 3}"),
        f"covers {N_ENTRIES} entries, only {N_ENTRIES - 3} remain")]
    + [(f"entry {s} edited, suffix re-hashed", _edit_rehash(s), f"entries 1..{N_ENTRIES} no longer match checkpoint")
       for s in range(1, N_ENTRIES + 1)]
    + [(f"entry {s} edited, suffix re-hashed, its checkpoints dropped", _edit_rehash_drop_checkpoints(s),
        f"entries {s}..{N_ENTRIES} are not covered by a signed checkpoint") for s in range(2, N_ENTRIES + 1)]
    + [("suffix re-hashed and a checkpoint forged with another key", _forge_checkpoint, "signature does not verify"),
       ("entry inserted", _insert, "entry 99: does not link")]
)


@pytest.mark.parametrize(("name", "mutate", "verdict"), CORPUS, ids=[c[0] for c in CORPUS])
def test_register_mutation_corpus(register_db: Path, tmp_path: Path, name: str, mutate: Mutation, verdict: str) -> None:
    path = tmp_path / "v"
    shutil.copytree(register_db, path)
    assert Vault(path).register.verify() == []  # the clean copy is never refused
    mutate(path)
    problems = Vault(path).register.verify()
    assert any(verdict in p for p in problems), (name, problems)


def test_register_is_append_only_for_ordinary_clients(register_db: Path, tmp_path: Path) -> None:
    shutil.copytree(register_db, tmp_path / "v")
    con = sqlite3.connect(tmp_path / "v" / "register.db")
    for stmt in ("UPDATE entries SET kind = 'x' WHERE seq = 1", "DELETE FROM entries WHERE seq = 1",
                 "DELETE FROM checkpoints"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute(stmt)
    con.close()


def test_rollback_is_caught_by_an_export_checkpoint(register_db: Path, tmp_path: Path) -> None:
    shutil.copytree(register_db, tmp_path / "v")
    old = (tmp_path / "v" / "register.db").read_bytes()
    vault = Vault(tmp_path / "v")
    vault.register.append("unmask", {"outcome": "granted"})
    cp = vault.register.checkpoint(vault.recorder)  # type: ignore[arg-type]
    assert vault.register.verify_against(cp) == []
    (tmp_path / "v" / "register.db").write_bytes(old)  # rolled back to a consistent older state
    rolled = Vault(tmp_path / "v")
    assert rolled.register.verify() == []  # consistent on its own...
    assert "rolled back" in rolled.register.verify_against(cp)[0]  # ...but not with what an export certified


# ---------------------------------------------------------------- retention
def test_hold_purge_tombstones_and_file_verification(template: Path, tmp_path: Path) -> None:
    vault = fresh_vault(template, tmp_path / "v")
    segs = record(vault, tmp_path / "out.mp4", n=8, segment_seconds=0.1)
    assert len(segs) == 3 and verify_files(vault) == []
    e = hold(vault, segs[1], "case 2026-118")
    assert e.body["until"] > (now_utc() + timedelta(days=HOLD_DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    segs[2].write_bytes(segs[2].read_bytes()[:-10])  # altered original
    assert verify_files(vault) == [f"{segs[2].resolve()}: modified since it was recorded (register entry {e.seq - 1})"]
    result = purge(vault, 0)
    assert [s.body["file"] for s in result.deleted] == [segs[0].name, segs[2].name]
    assert [s.body["file"] for s in result.refused] == [segs[1].name]
    assert not segs[0].exists() and not Path(str(segs[0]) + ".sealed").exists() and segs[1].exists()
    kinds = [x.kind for x in vault.register.entries()[-3:]]
    assert kinds == ["tombstone", "purge_refused", "tombstone"]
    tomb = vault.register.entries()[-3].body
    assert tomb["sha256"] and tomb["sidecar_sha256"] and tomb["by"]
    assert verify_files(vault) == [] and vault.register.verify() == []
    later = purge(vault, 0, now=now_utc() + timedelta(days=HOLD_DAYS + 1))  # the hold has expired
    assert [s.body["file"] for s in later.deleted] == [segs[1].name] and not later.refused
    with pytest.raises(VaultError, match="not a segment recorded"):
        hold(vault, segs[1], "too late")
