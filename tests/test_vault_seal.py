"""Sealed sidecars: capture/paste, and a mutation corpus (signed-video style) with exact verdicts."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from stream_helpers import SQ, H, W, make_frame, square_at
from vault_helpers import fresh_vault, passphrase, record, vault_template

from masking.errors import TamperError
from masking.vault.access import open_footage
from masking.vault.seal import _HEAD, MAGIC, SidecarReader, capture, merge_rects, paste, sidecar_path
from masking.video.reader import VideoReader


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One vault, two cameras' worth of segments (bgr24), and an older recording of segment 0."""
    root = tmp_path_factory.mktemp("seal")
    vault = fresh_vault(vault_template(root), root / "vault")
    (root / "older").mkdir()
    older = record(vault, root / "older" / "out.mp4", n=12, segment_seconds=0.2)
    segs = record(vault, root / "out.mp4", n=12, segment_seconds=0.2)
    unlocked = vault.unlock(["alice", "bob"], passphrase)
    return {"root": root, "vault": vault, "segments": segs, "older": older, "unlocked": unlocked}


def _reader(rec: dict[str, object], side: Path) -> SidecarReader:
    r = SidecarReader(side, rec["vault"].config, rec["unlocked"].sealing)  # type: ignore[attr-defined]
    r.authenticate()
    return r


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, frame) of every record of a clean sidecar."""
    pos = len(MAGIC)
    for _ in range(2):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4 + n
    out = []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        frame = _HEAD.unpack_from(data, pos + 4)[3]
        out.append((pos, pos + 4 + n, frame))
        pos += 4 + n
    return out


def test_capture_paste_round_trip_bgr_and_yuv() -> None:
    img = make_frame(3)
    boxes = np.array([[10.5, 20.2, 50.7, 60.1], [40, 50, 90, 100], [200, 10, 230, 40]], np.float32)
    regs = capture(img, boxes, "bgr24")
    assert regs.rects.tolist() == [[10, 20, 90, 100], [200, 10, 230, 40]]  # the first two overlap: merged
    blank = np.zeros_like(img)
    for rect, data in zip(regs.rects.tolist(), regs.pixels):
        paste(blank, tuple(rect), data, "bgr24")
    assert np.array_equal(blank[20:100, 10:90], img[20:100, 10:90])
    assert np.array_equal(blank[10:40, 200:230], img[10:40, 200:230])
    import cv2

    yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
    regs = capture(yuv, np.array([[11, 21, 51, 61]], np.float32), "yuv420p")
    assert regs.rects.tolist() == [[10, 20, 52, 62]]  # even-aligned outwards
    blank = np.zeros_like(yuv)
    paste(blank, tuple(regs.rects[0].tolist()), regs.pixels[0], "yuv420p")
    back = capture(blank, np.array([[11, 21, 51, 61]], np.float32), "yuv420p")
    assert back.pixels == regs.pixels


def test_merge_rects_chains_of_overlaps() -> None:
    r = np.array([[0, 0, 10, 10], [8, 8, 20, 20], [18, 18, 30, 30], [50, 50, 60, 60]], np.int64)
    assert sorted(merge_rects(r).tolist()) == [[0, 0, 30, 30], [50, 50, 60, 60]]


def test_clean_sidecars_authenticate_and_hold_the_original_square(recorded: dict[str, object]) -> None:
    total = 0
    for seg in recorded["segments"]:  # type: ignore[attr-defined]
        r = _reader(recorded, sidecar_path(seg))
        assert r.summary["records"] == len([o for offs in r.index.values() for o in offs]) > 0
        with VideoReader(seg) as vr:
            for vf in vr.frames():
                regions = r.regions(vf.index)
                assert len(regions) == 1
                x0, y0, x1, y1 = regions[0].rect
                full = np.zeros((H, W, 3), np.uint8)
                paste(full, regions[0].rect, regions[0].pixels, r.layout)
                x, y = square_at((regions[0].pts - 1000) // 3600, 4)  # SyntheticSource: pts = 1000 + i * 3600
                assert full[y : y + SQ, x : x + SQ].min() == 255  # the original square, not its mask
                assert (x0 <= x and x + SQ <= x1 and y0 <= y and y + SQ <= y1)
                total += 1
        seg_entry, reader = open_footage(recorded["vault"], seg, recorded["unlocked"])  # type: ignore[arg-type]
        assert seg_entry.body["file"] == seg.name
    assert total == 12


Mutation = Callable[[bytes, bytes, bytes], bytes]  # (this sidecar, another file's sidecar, older sidecar) -> bytes


def _flip(pos: int) -> Mutation:
    return lambda d, other, old: d[:pos] + bytes([d[pos] ^ 0x01]) + d[pos + 1 :]


def _swap_records(i: int, j: int) -> Mutation:
    def m(d: bytes, other: bytes, old: bytes) -> bytes:
        recs = _records(d)
        (a0, a1, _), (b0, b1, _) = recs[i], recs[j]
        return d[:a0] + d[b0:b1] + d[a1:b0] + d[a0:a1] + d[b1:]
    return m


def _swap_payloads(i: int, j: int) -> Mutation:
    """Swap only the encrypted pixels of two regions of the same size (heads stay in place)."""
    def m(d: bytes, other: bytes, old: bytes) -> bytes:
        recs = _records(d)
        (a0, a1, _), (b0, b1, _) = recs[i], recs[j]
        h = 4 + _HEAD.size
        assert a1 - a0 == b1 - b0
        return d[: a0 + h] + d[b0 + h : b1] + d[a1 : b0 + h] + d[a0 + h : a1] + d[b1:]
    return m


def _from_other(i: int) -> Mutation:
    """Record i replaced by record i of another segment's sidecar."""
    def m(d: bytes, other: bytes, old: bytes) -> bytes:
        a0, a1, _ = _records(d)[i]
        b0, b1, _ = _records(other)[i]
        return d[:a0] + other[b0:b1] + d[a1:]
    return m


def _pts_moved(i: int) -> Mutation:
    """Record i's head claims another frame (PTS + 1)."""
    def m(d: bytes, other: bytes, old: bytes) -> bytes:
        a0 = _records(d)[i][0] + 4
        head = list(_HEAD.unpack_from(d, a0))
        head[2] += 1
        return d[:a0] + _HEAD.pack(*head) + d[a0 + _HEAD.size :]
    return m


def _corpus(clean: bytes) -> list[tuple[str, Mutation, str]]:
    """Every mutation and the verdict it must get (a substring of the TamperError)."""
    recs = _records(clean)
    cases: list[tuple[str, Mutation, str]] = []
    header_end = recs[0][0]
    for pos in sorted(set(np.linspace(0, header_end - 1, 12).astype(int).tolist())):
        cases.append((f"flip header byte {pos}", _flip(pos), ""))
    for k, (a0, a1, _) in enumerate(recs):
        for pos in sorted({a0, a0 + 4, a0 + 4 + 9, a0 + 4 + _HEAD.size - 1, (a0 + a1) // 2, a1 - 1}):
            cases.append((f"flip record {k} byte {pos}", _flip(pos), "" if pos < a0 + 4 else "segment "))
    sizes = [a1 - a0 for a0, a1, _ in recs[:-1]]
    i, j = next((i, j) for i in range(len(sizes)) for j in range(i + 1, len(sizes)) if sizes[i] == sizes[j])
    cases += [
        ("regions swapped between frames (whole records)", _swap_records(0, 1), "record 2 found where record 1"),
        ("pixels swapped between frames", _swap_payloads(i, j), f"frame {recs[i][2]} "),
        ("region moved to another frame", _pts_moved(1), "frame 1"),
        ("region from another file", _from_other(0), "frame 0"),
        ("end record cut", lambda d, o, old: d[: recs[-1][0]], "end record is missing"),
        ("cut inside a record", lambda d, o, old: d[: (recs[1][0] + recs[1][1]) // 2], "truncated"),
        ("cut after the header", lambda d, o, old: d[:header_end], "end record is missing"),
        ("cut in the header", lambda d, o, old: d[:20], "truncated"),
        ("bytes appended", lambda d, o, old: d + b"\0" * 40, "after the end"),
        ("a record dropped", lambda d, o, old: d[: recs[0][0]] + d[recs[0][1] :], "record 2 found where record 1"),
        ("a record duplicated", lambda d, o, old: d[: recs[1][1]] + d[recs[1][0] :], "record 2 found where record 3"),
        ("empty file", lambda d, o, old: b"", "bad magic"),
    ]
    return cases


def test_sidecar_mutation_corpus_every_mutation_detected(recorded: dict[str, object], tmp_path: Path) -> None:
    segs: list[Path] = recorded["segments"]  # type: ignore[assignment]
    clean = sidecar_path(segs[0]).read_bytes()
    other = sidecar_path(segs[1]).read_bytes()
    older = sidecar_path(recorded["older"][0]).read_bytes()  # type: ignore[index]
    cases = _corpus(clean)
    assert len(cases) >= 60
    target = tmp_path / segs[0].name
    side = sidecar_path(target)
    shutil.copyfile(segs[0], target)
    for name, mutate, verdict in cases:
        data = mutate(clean, other, older)
        assert data != clean, name
        side.write_bytes(data)
        with pytest.raises(TamperError) as err:
            _reader(recorded, side)
        assert verdict in str(err.value), (name, str(err.value))
        if verdict.startswith("frame") or verdict == "segment ":
            assert f"segment {segs[0].name}" in str(err.value), (name, str(err.value))
    # an exact verdict for a payload flip: the frame of that record
    a0, a1, frame = _records(clean)[2]
    side.write_bytes(_flip(a1 - 1)(clean, other, older))
    with pytest.raises(TamperError, match=f"segment {segs[0].name}: frame {frame} "):
        _reader(recorded, side)


def test_replayed_older_sidecar_authenticates_but_is_refused_by_the_register(recorded: dict[str, object],
                                                                             tmp_path: Path) -> None:
    segs: list[Path] = recorded["segments"]  # type: ignore[assignment]
    older = sidecar_path(recorded["older"][0])  # type: ignore[index]
    target = tmp_path / segs[0].name
    shutil.copyfile(segs[0], target)
    shutil.copyfile(older, sidecar_path(target))
    _reader(recorded, sidecar_path(target))  # cryptographically a genuine sidecar of this vault...
    with pytest.raises(TamperError, match="not the sidecar registered at recording time"):
        open_footage(recorded["vault"], target, recorded["unlocked"])  # type: ignore[arg-type]
    shutil.copyfile(sidecar_path(segs[0]), sidecar_path(target))
    open_footage(recorded["vault"], target, recorded["unlocked"])  # type: ignore[arg-type]  # the clean one passes


def test_data_keys_and_nonces_never_repeat(recorded: dict[str, object]) -> None:
    """A fresh ephemeral key (so data key) per segment; nonces are the record sequence (unique per key)."""
    headers = [_reader(recorded, sidecar_path(s)).header for s in recorded["segments"]]  # type: ignore[attr-defined]
    keys = [h["ephemeral_public_key"] for h in headers]
    assert len(set(keys)) == len(keys)
    data = sidecar_path(recorded["segments"][0]).read_bytes()  # type: ignore[index]
    seqs = [_HEAD.unpack_from(data, a0 + 4)[1] for a0, _, _ in _records(data)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_yuv420p_recording_seals_even_aligned_regions(tmp_path: Path) -> None:
    vault = fresh_vault(vault_template(tmp_path), tmp_path / "vault")
    (seg,) = record(vault, tmp_path / "out.mp4", n=10, layout="yuv420p")
    r = SidecarReader(sidecar_path(seg), vault.config, vault.unlock(["bob", "carol"], passphrase).sealing)
    assert r.authenticate()["frames"] == 10 and r.layout == "yuv420p"
    rects = [reg.rect for frame in r.index for reg in r.regions(frame)]
    assert len(rects) == 10 and all(v % 2 == 0 for rect in rects for v in rect)


def test_policy_full_frames_are_sealed_whole_with_static_zones_already_masked(tmp_path: Path) -> None:
    vault = fresh_vault(vault_template(tmp_path), tmp_path / "vault")
    (seg,) = record(vault, tmp_path / "out.mp4", n=6, fail_on=2)
    r = SidecarReader(sidecar_path(seg), vault.config, vault.unlock(["alice", "carol"], passphrase).sealing)
    r.authenticate()
    whole = [reg for frame in r.index for reg in r.regions(frame) if reg.rect == (0, 0, W, H)]
    assert whole, "the frame blacked by the fail policy was not sealed"
    img = np.frombuffer(whole[0].pixels, np.uint8).reshape(H, W, 3)
    assert img[: int(0.2 * H), : int(0.2 * W)].max() == 0  # the privacy zone is masked inside the seal too
    assert img[int(0.3 * H) :, int(0.3 * W) :].max() > 0
