"""Lawful access end to end on a real clip: filter --detect faces --vault, unmask round trip (PSNR),
refusals (exit 4, reason, registered), register show/export, serve configs with `vault:`."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from vault_helpers import PASSPHRASES, psnr, set_env, synthetic_clip

from masking.cli import main
from masking.vault.access import open_footage
from masking.vault.seal import sidecar_path
from masking.vault.vault import Vault
from masking.video.reader import VideoReader

ZONES = """cameras:
  - camera_id: office
    zones:
      - {id: corner, kind: privacy_mask, polygon: [[0, 0], [0.15, 0], [0.15, 0.15], [0, 0.15]]}
"""
ACCESS = ["--requester", "Li Wei, PSB Haidian, 110105", "--staff", "Zhang San, 0012", "--staff", "Li Si, 0013",
          "--purpose", "case 2026-118", "--approval", "Order 2026-33, Officer Wang"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, office_clip: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    set_env(mp)
    try:
        (root / "zones.yaml").write_text(ZONES)
        assert main(["-q", "vault", "init", str(root / "vault"), "--custodians", "alice,bob,carol", "--threshold", "2"]) == 0
        assert main(["-q", "filter", str(office_clip), "-o", str(root / "masked.mp4"), "--zones", str(root / "zones.yaml"),
                     "--detect", "faces", "--vault", str(root / "vault")]) == 0
    finally:
        mp.undo()
    return {"root": root, "vault": root / "vault", "masked": root / "masked.mp4", "source": office_clip}


def _frames(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return [f.image for f in r]


@pytest.mark.slow
def test_unmask_round_trip_on_a_real_clip(recording: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    set_env(monkeypatch)
    clear = recording["root"] / "clear.mp4"
    rc = main(["unmask", str(recording["masked"]), "-o", str(clear), "--vault", str(recording["vault"]),
               "--custodian", "alice", "--custodian", "bob", *ACCESS])
    assert rc == 0, capsys.readouterr().err
    vault = Vault(recording["vault"])
    _, sidecar = open_footage(vault, recording["masked"], vault.unlock(["alice", "bob"]))
    original, masked, restored = (_frames(p) for p in (recording["source"], recording["masked"], clear))
    assert len(original) == len(masked) == len(restored) == 182
    h, w = original[0].shape[:2]
    zone = np.zeros((h, w), bool)
    zone[: int(0.15 * h) + 4, : int(0.15 * w) + 4] = True
    inside_o, inside_r, inside_m, outside_m, outside_r = [], [], [], [], []
    frames_with_faces = 0
    for i, (o, m, r) in enumerate(zip(original, masked, restored)):
        dyn = np.zeros((h, w), bool)
        for reg in sidecar.regions(i):
            x0, y0, x1, y1 = reg.rect
            dyn[y0:y1, x0:x1] = True
        frames_with_faces += bool(dyn.any())
        inner = dyn & ~zone
        inside_o.append(o[inner]); inside_r.append(r[inner]); inside_m.append(m[inner])  # noqa: E702
        outside_m.append(m[~dyn]); outside_r.append(r[~dyn])  # noqa: E702
    assert frames_with_faces > 50
    p_in = psnr(np.concatenate(inside_o), np.concatenate(inside_r))
    p_out = psnr(np.concatenate(outside_m), np.concatenate(outside_r))
    p_masked = psnr(np.concatenate(inside_o), np.concatenate(inside_m))
    print(f"PSNR restored vs original inside the dynamic masks: {p_in:.1f} dB; restored vs masked outside: "
          f"{p_out:.1f} dB; masked vs original inside (the masks themselves): {p_masked:.1f} dB")
    assert p_in > 35.0 and p_out > 38.0 and p_masked < 20.0  # measured: 42.2 / 44.7 / 4.6 and 39.5 / 45.3 / 6.3 dB
    for r in restored:
        assert r[: int(0.15 * h) - 4, : int(0.15 * w) - 4].max() < 40  # static zones are never sealed: they stay masked in the restored video
    entries = vault.register.entries()
    kinds = [e.kind for e in entries]
    assert kinds[:2] == ["vault_init", "segment"] and "unmask_output" in kinds
    granted = next(e for e in entries if e.kind == "unmask" and e.body["outcome"] == "granted")
    assert granted.body["staff"] == ["Zhang San, 0012", "Li Si, 0013"] and granted.body["custodians"] == ["alice", "bob"]
    assert vault.register.verify() == []


REFUSALS = [
    ("one custodian", ["--custodian", "alice"], {}, "1 custodian(s) given, this vault needs 2"),
    ("repeated custodian", ["--custodian", "alice", "--custodian", "Alice"], {}, "custodian alice is named more than once"),
    ("wrong passphrase", ["--custodian", "alice", "--custodian", "bob"], {"MASKING_PASSPHRASE_BOB": "not-bobs-one"},
     "custodian bob: wrong passphrase"),
    ("unknown custodian", ["--custodian", "alice", "--custodian", "eve"], {}, "'eve' is not a custodian"),
]


@pytest.mark.slow
def test_refusals_exit_4_with_the_reason_and_are_registered(recording: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    set_env(monkeypatch)
    base = ["--custodian", "alice", "--custodian", "carol"]
    no = lambda flag: [a for i, a in enumerate(ACCESS) if not (a == flag or (i and ACCESS[i - 1] == flag))]  # noqa: E731
    cases = [(n, c + ACCESS, env, why) for n, c, env, why in REFUSALS] + [
        ("one staff", base + no("--staff") + ["--staff", "Zhang San, 0012"], {}, "at least two staff"),
        ("the same staff twice", base + no("--staff") + ["--staff", "Zhang San, 0012", "--staff", "zhang san,  0012"],
         {}, "1 distinct staff"),
        ("no purpose", base + no("--purpose"), {}, "no purpose"),
        ("no approval", base + no("--approval"), {}, "no approval"),
        ("no requester", base + no("--requester"), {}, "no requester"),
    ]
    masked = tmp_path / "masked.mp4"
    shutil.copyfile(recording["masked"], masked)
    shutil.copyfile(sidecar_path(recording["masked"]), sidecar_path(masked))
    vault = Vault(recording["vault"])
    for name, args, env, why in cases:
        for k, v in {**{f"MASKING_PASSPHRASE_{n.upper()}": p for n, p in PASSPHRASES.items()}, **env}.items():
            monkeypatch.setenv(k, v)
        before = len(vault.register.entries())
        rc = main(["unmask", str(masked), "-o", str(tmp_path / "clear.mp4"), "--vault", str(vault.path), *args])
        err = capsys.readouterr().err
        assert rc == 4, (name, err)
        assert "refused" in err and why in err, (name, err)
        new = vault.register.entries()[before:]
        assert len(new) == 1 and new[0].body["outcome"] == "refused" and why in new[0].body["reason"], name
        assert not (tmp_path / "clear.mp4").exists()
    # tampered footage: a byte of the sidecar (named down to the frame), the video, a missing sidecar
    data = bytearray(sidecar_path(masked).read_bytes())
    data[-5000] ^= 0x10
    sidecar_path(masked).write_bytes(bytes(data))
    for name, why in (("sidecar byte", r"segment masked.mp4: frame \d+ \(pts \d+\), region 0: fails authentication"),
                      ("video byte", r"not a segment recorded in this vault's register \(unknown or altered video\)"), ("no sidecar", "sealed sidecar missing")):
        if name == "video byte":
            shutil.copyfile(sidecar_path(recording["masked"]), sidecar_path(masked))
            video = bytearray(masked.read_bytes())
            video[len(video) // 2] ^= 0x01
            masked.write_bytes(bytes(video))
        if name == "no sidecar":
            shutil.copyfile(recording["masked"], masked)
            sidecar_path(masked).unlink()
        before = len(vault.register.entries())
        rc = main(["unmask", str(masked), "-o", str(tmp_path / "clear.mp4"), "--vault", str(vault.path), *base, *ACCESS])
        err = capsys.readouterr().err
        assert rc == 4, (name, err)
        assert re.search(why, err), (name, err)
        assert vault.register.entries()[before].body["outcome"] == "refused"
    assert vault.register.verify() == []


@pytest.mark.slow
def test_frames_restrict_what_is_restored(recording: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)
    clear = tmp_path / "part.mp4"
    assert main(["-q", "unmask", str(recording["masked"]), "-o", str(clear), "--vault", str(recording["vault"]),
                 "--custodian", "bob", "--custodian", "carol", "--frames", "100-120", *ACCESS]) == 0
    masked, restored, original = _frames(recording["masked"]), _frames(clear), _frames(recording["source"])
    vault = Vault(recording["vault"])
    _, sidecar = open_footage(vault, recording["masked"], vault.unlock(["bob", "carol"]))
    for i in (90, 110, 130):
        regs = sidecar.regions(i)
        assert regs, f"no face sealed in frame {i}"
        x0, y0, x1, y1 = regs[0].rect
        got = restored[i][y0:y1, x0:x1]
        want = original[i][y0:y1, x0:x1] if 100 <= i <= 120 else masked[i][y0:y1, x0:x1]
        assert psnr(got, want) > 35.0, i
    last = vault.register.entries()[-2]
    assert last.kind == "unmask" and last.body["scope"] == {"first": 100, "last": 120}


@pytest.mark.slow
def test_register_show_and_export_for_inspectors(recording: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register", "show", "--vault", str(recording["vault"]), "--camera", "office", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    seg = next(r for r in rows if r["event"] == "segment")
    assert "zones" in seg["recorded_by"] and seg["destination"].endswith("masked.mp4")
    assert main(["register", "export", "--vault", str(recording["vault"]), "--since", "2000-01-01"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["kind"] == "vault_init" and all(len(x["hash"]) == 64 for x in lines)
    assert main(["register", "verify", "--vault", str(recording["vault"])]) == 0
    assert main(["vault", "verify", "--vault", str(recording["vault"])]) == 0


def test_vault_needs_h264_output_and_video_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "zones.yaml").write_text(ZONES)
    clip = synthetic_clip(tmp_path / "in.mp4", 4)
    rc = main(["filter", str(clip), "-o", str(tmp_path / "jpg"), "--output-format", "jpeg-dir",
               "--zones", str(tmp_path / "zones.yaml"), "--vault", str(tmp_path / "nowhere")])
    assert rc == 2 and "--vault needs h264 output" in capsys.readouterr().err


def test_serve_config_vault_entry_registers_each_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)
    (tmp_path / "zones.yaml").write_text(ZONES)
    synthetic_clip(tmp_path / "in.mp4", 12)
    assert main(["-q", "vault", "init", str(tmp_path / "vault"), "--custodians", "alice,bob", "--threshold", "2"]) == 0
    (tmp_path / "serve.yaml").write_text(
        "cameras:\n  - name: lobby\n    source: in.mp4\n    zones: zones.yaml\n    vault: vault\n"
        "    sink: {path: out/lobby.mp4, segment_seconds: 0.2}\n")
    (tmp_path / "out").mkdir()
    assert main(["-q", "serve", str(tmp_path / "serve.yaml")]) == 0
    segs = [e for e in Vault(tmp_path / "vault").register.entries() if e.kind == "segment"]
    assert [e.body["file"] for e in segs] == ["lobby_00000.mp4", "lobby_00001.mp4", "lobby_00002.mp4"]
    assert all((tmp_path / "out" / (e.body["file"] + ".sealed")).is_file() for e in segs)
    (tmp_path / "bad.yaml").write_text((tmp_path / "serve.yaml").read_text().replace("{path:", "{format: jpeg-dir, path:")
                                       .replace(", segment_seconds: 0.2", ""))
    assert main(["-q", "serve", str(tmp_path / "bad.yaml")]) == 2
