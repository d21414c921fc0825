"""Signed exports: footage handed to an authority, verifiable offline with nothing but the folder.

    EXPORT/
      footage/NAME.mp4            masked segment, as recorded
      footage/NAME.mp4.sealed     its sealed sidecar, as recorded
      footage/NAME.clear.mp4      with --unmask: the restored video
      register.json               register excerpt (these segments' entries, the unmask and export
                                  entries in full, every other entry as its digest) + checkpoint
      vault.json                  the vault's public configuration (certified by its signing key)
      manifest.json               SHA-256 and size of every file above, the checkpoint, and an
                                  Ed25519 signature over all of it (vault key with custodians
                                  present, else the recorder key certified in vault.json)

`verify_export` names every file modified, added or removed, checks the signature, the register
excerpt against its checkpoint, and each segment's files against the hashes registered when it
was recorded. With a pinned vault public key it also refuses an export re-signed by anyone else
(without one, it proves integrity relative to the vault.json inside the export).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masking.errors import OutputError, VaultError
from masking.vault._codec import b64, canonical, iso, now_utc, sha256_file, unb64
from masking.vault.keys import Signer, VaultConfig
from masking.vault.register import Checkpoint, excerpt_problems
from masking.vault.vault import Segment, Vault

FORMAT = 1
MANIFEST = "manifest.json"
REGISTER = "register.json"
VAULT = "vault.json"
FOOTAGE = "footage"


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


@dataclass
class ExportBuilder:
    """Stages an export in a hidden folder beside `out`; `finish` signs it and moves it into place."""

    out: Path
    segments: list[Segment] = field(default_factory=list)
    related: list[int] = field(default_factory=list)  # register entries shown in full besides the segments

    def __post_init__(self) -> None:
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise OutputError(f"{self.out}: exists and is not empty; an export is never written over")
        self.stage = self.out.with_name(f".{self.out.name}.partial")
        shutil.rmtree(self.stage, ignore_errors=True)
        (self.stage / FOOTAGE).mkdir(parents=True)

    def add_segment(self, seg: Segment, video: Path, sidecar: Path) -> None:
        for src in (video, sidecar):
            try:
                shutil.copyfile(src, self.stage / FOOTAGE / src.name)
            except OSError as exc:
                raise OutputError(f"{src}: cannot copy into the export: {exc.strerror or exc}") from exc
        self.segments.append(seg)

    def clear_path(self, video: Path) -> Path:
        """Where the restored video of `video` goes in the export."""
        return self.stage / FOOTAGE / f"{Path(video.name).stem}.clear{video.suffix or '.mp4'}"

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def finish(self, vault: Vault, signer: Signer, fields: dict[str, Any]) -> dict[str, Any]:
        files = {rel: {"sha256": sha256_file(p), "size": p.stat().st_size} for rel, p in _files(self.stage).items()}
        entry = vault.register.append("export", {
            **fields, "destination": str(self.out.resolve()), "files": files,
            "segments": [{"seq": s.seq, "file": s.body["file"]} for s in self.segments],
        }, self.segments[0].entry.camera if self.segments else None, signer=signer)
        cp = vault.register.checkpoint(signer)
        keep = [s.seq for s in self.segments] + self.related + [entry.seq]
        register = {"entries": vault.register.excerpt(keep, cp.n), "checkpoint": cp.to_dict()}
        try:
            (self.stage / REGISTER).write_text(json.dumps(register, indent=1, ensure_ascii=False), encoding="utf-8")
            (self.stage / VAULT).write_text(json.dumps(vault.config.to_dict(), indent=1), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"{self.stage}: cannot write the export: {exc.strerror or exc}") from exc
        files = {rel: {"sha256": sha256_file(p), "size": p.stat().st_size} for rel, p in _files(self.stage).items()}
        manifest: dict[str, Any] = {
            "format": FORMAT, "vault_id": vault.config.vault_id, "created": iso(now_utc()), "signer": signer.name,
            "export_entry": entry.seq, "checkpoint": cp.to_dict(), "files": files,
            "segments": [{"file": f"{FOOTAGE}/{s.body['file']}", "sidecar": f"{FOOTAGE}/{s.body['sidecar']}",
                          "register_seq": s.seq} for s in self.segments],
        }
        manifest["signature"] = b64(signer.sign(_signed(manifest)))
        try:
            (self.stage / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if self.out.exists():
                _move_into(self.stage, self.out)
            else:
                self.stage.replace(self.out)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot finish the export: {exc.strerror or exc}") from exc
        return manifest


def _move_into(stage: Path, out: Path) -> None:
    """`out` exists and is empty: move the staged contents in, then drop the stage."""
    for p in stage.iterdir():
        p.replace(out / p.name)
    stage.rmdir()


def _signed(manifest: dict[str, Any]) -> bytes:
    return b"masking-export-v1\0" + canonical({k: v for k, v in manifest.items() if k != "signature"})


@dataclass
class ExportVerdict:
    problems: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(root: Path, pinned: bytes | None = None) -> ExportVerdict:
    """Check an export folder offline; every problem names the file it concerns."""
    if not root.is_dir():
        raise VaultError(f"{root}: no such export folder")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        listed: dict[str, dict[str, Any]] = manifest["files"]
        signature = unb64(manifest["signature"], MANIFEST)
        signer = str(manifest["signer"])
        cp = Checkpoint.from_dict(manifest["checkpoint"], MANIFEST)
        assert isinstance(listed, dict)
    except FileNotFoundError:
        return ExportVerdict([f"{MANIFEST}: removed (nothing can be verified)"])
    except (OSError, ValueError, KeyError, TypeError, AssertionError, VaultError):
        return ExportVerdict([f"{MANIFEST}: modified (unreadable)"])
    present = {rel: p for rel, p in _files(root).items() if rel != MANIFEST}
    try:
        config = VaultConfig.from_dict(json.loads((root / VAULT).read_text(encoding="utf-8")), VAULT)
    except FileNotFoundError:
        return ExportVerdict([f"{VAULT}: removed"])
    except (OSError, ValueError, VaultError):
        return ExportVerdict([f"{VAULT}: modified (its certificate does not verify)"])
    if pinned is not None and config.signing_public_key != pinned:
        return ExportVerdict([f"{VAULT}: not the pinned vault (signing key differs): the export was re-signed"])
    if not (signer in ("vault", "recorder") and config.verify(signer, signature, _signed(manifest))):
        vault_listed = listed.get(VAULT, {}).get("sha256")
        if vault_listed is not None and sha256_file(root / VAULT) != vault_listed:
            return ExportVerdict([f"{VAULT}: modified"])
        return ExportVerdict([f"{MANIFEST}: modified (its signature does not verify)"])
    problems = [f"{rel}: added (not in the manifest)" for rel in present if rel not in listed]
    problems += [f"{rel}: removed" for rel in listed if rel not in present]
    modified = {rel for rel in listed if rel in present and sha256_file(present[rel]) != listed[rel].get("sha256")}
    problems += [f"{rel}: modified" for rel in sorted(modified)]
    if problems:
        return ExportVerdict(problems, manifest)
    register = json.loads((root / REGISTER).read_text(encoding="utf-8"))
    if Checkpoint.from_dict(register["checkpoint"], REGISTER) != cp:
        return ExportVerdict([f"{REGISTER}: its checkpoint differs from the manifest's"], manifest)
    chain, entries = excerpt_problems(register["entries"], cp, config)
    problems += [f"{REGISTER}: {p}" for p in chain]
    for s in manifest.get("segments", []):
        e = entries.get(int(s["register_seq"]))
        if e is None or e.kind != "segment":
            problems.append(f"{s['file']}: its recording entry {s['register_seq']} is not in {REGISTER}")
            continue
        for rel, key in ((s["file"], "sha256"), (s["sidecar"], "sidecar_sha256")):
            if listed.get(rel, {}).get("sha256") != e.body.get(key):
                problems.append(f"{rel}: differs from the file registered at recording time (entry {e.seq})")
    return ExportVerdict(problems, manifest)
