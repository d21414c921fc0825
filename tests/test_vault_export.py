"""Signed exports: the mutation corpus (every file changed, added, removed, renamed) with exact verdicts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from vault_helpers import fresh_vault, record, set_env, vault_template

from masking.cli import main
from masking.vault.export import verify_export
from masking.vault.keys import load_config
from masking.vault.register import Checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An export of two segments with --unmask (restored videos inside), signed by the vault key."""
    root = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    set_env(mp)
    try:
        vault = fresh_vault(vault_template(root), root / "vault")
        segs = record(vault, root / "out.mp4", n=10, segment_seconds=0.2)[:2]
        rc = main(["-q", "export", *map(str, segs), "-o", str(root / "exp"), "--vault", str(vault.path), "--unmask",
                   "--custodian", "alice", "--custodian", "carol", "--requester", "Li Wei, PSB Haidian, 110105",
                   "--staff", "Zhang San, 0012", "--staff", "Li Si, 0013", "--purpose", "case 2026-118",
                   "--approval", "Order 2026-33, Officer Wang"])
        assert rc == 0
        rc = main(["-q", "export", str(segs[0]), "-o", str(root / "plain"), "--vault", str(vault.path)])
        assert rc == 0
    finally:
        mp.undo()
    return {"root": root, "vault": vault.path, "export": root / "exp", "plain": root / "plain"}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_clean_exports_verify_with_and_without_a_pinned_key(exported: dict[str, Path]) -> None:
    pinned = load_config(exported["vault"]).signing_public_key
    for name, signer in (("export", "vault"), ("plain", "recorder")):
        v = verify_export(exported[name], pinned)
        assert v.ok, v.problems
        assert v.manifest["signer"] == signer
    files = _files(exported["export"])
    assert len([f for f in files if f.endswith(".clear.mp4")]) == 2
    assert len([f for f in files if f.endswith(".mp4.sealed")]) == 2
    register = json.loads((exported["export"] / "register.json").read_text())
    full = [e for e in register["entries"] if "body" in e]
    assert [e["kind"] for e in full] == ["segment", "segment", "unmask", "export"]  # the rest are digests only
    assert all(set(e) == {"seq", "digest"} for e in register["entries"] if "body" not in e)


Mutation = Callable[[Path], None]


def _flip(rel: str) -> Mutation:
    def m(root: Path) -> None:
        p = root / rel
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x04
        p.write_bytes(bytes(data))
    return m


def _corpus(files: list[str]) -> list[tuple[str, Mutation, list[str]]]:
    cases: list[tuple[str, Mutation, list[str]]] = []
    for rel in files:
        expected = [f"{rel}: modified"]
        cases.append((f"byte changed in {rel}", _flip(rel), expected))
        cases.append((f"{rel} removed", lambda r, rel=rel: (r / rel).unlink(), [f"{rel}: removed"]))
    clip = next(f for f in files if f.endswith(".clear.mp4"))
    renamed = clip.replace(".clear.mp4", ".renamed.mp4")
    cases += [
        ("a file added", lambda r: (r / "footage" / "note.txt").write_text("x"),
         ["footage/note.txt: added (not in the manifest)"]),
        ("a file added at the top", lambda r: (r / "extra.mp4").write_bytes(b"\0"), ["extra.mp4: added (not in the manifest)"]),
        (f"{clip} renamed", lambda r: (r / clip).rename(r / renamed),
         [f"{renamed}: added (not in the manifest)", f"{clip}: removed"]),
    ]
    return cases


def test_export_mutation_corpus_names_the_exact_file(exported: dict[str, Path], tmp_path: Path) -> None:
    files = _files(exported["export"])
    cases = _corpus(files)
    assert len(cases) == 2 * len(files) + 3
    for name, mutate, expected in cases:
        copy = tmp_path / name.replace("/", "_").replace(" ", "_")
        shutil.copytree(exported["export"], copy)
        mutate(copy)
        problems = verify_export(copy).problems
        assert len(problems) == len(expected), (name, problems)
        for want, got in zip(expected, problems):
            assert got.startswith(want), (name, problems)


def test_re_signed_export_passes_only_without_a_pinned_key(exported: dict[str, Path], tmp_path: Path) -> None:
    """Someone with another vault re-signs altered footage: self-consistent, but not the pinned vault."""
    other = vault_template(tmp_path / "other")
    forged = tmp_path / "forged"
    shutil.copytree(exported["plain"], forged)
    pinned = load_config(exported["vault"]).signing_public_key
    shutil.copyfile(other / "vault.yaml", tmp_path / "o.yaml")
    cfg = load_config(other)
    (forged / "vault.json").write_text(json.dumps(cfg.to_dict()))
    assert verify_export(forged).problems == ["vault.json: modified"]  # the manifest still lists the old hash
    v = verify_export(forged, pinned)
    assert v.problems and v.problems[0].startswith("vault.json: not the pinned vault")


def test_cli_verify_exit_codes_and_rollback_check(exported: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(exported["export"]), "--public-key", str(exported["vault"] / "vault.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad"
    shutil.copytree(exported["export"], bad)
    _flip("footage/out_00001.mp4")(bad)
    assert main(["verify", str(bad)]) == 1
    assert "FAIL footage/out_00001.mp4: modified" in capsys.readouterr().out
    assert main(["register", "verify", "--vault", str(exported["vault"]), "--export", str(exported["export"])]) == 0
    manifest = json.loads((exported["export"] / "manifest.json").read_text())
    assert Checkpoint.from_dict(manifest["checkpoint"], "m").signer == "vault"
