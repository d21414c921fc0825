"""Fuzzing the config loaders (zones, serve, fleet manifests): whatever the bytes, the loader either
accepts the file or raises a `MaskingError` whose message names the file, and the CLI exits 0 or 2
with a message, never a traceback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masking.cli import main
from masking.config.zones import load_zones
from masking.errors import MaskingError
from masking.rescan.manifest import load_fleet
from masking.stream.config import load_serve_config

VALID_ZONES = """\
cameras:
  - camera_id: lobby
    zones:
      - id: door
        kind: privacy_mask
        polygon: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
        style: {mode: blur, strength: 31}
    detect: {detectors: [{model: yunet}], every: 2}
"""
VALID_SERVE = """\
stats_interval_s: 5
cameras:
  - name: lobby
    source: rtsp://10.0.0.5/stream1
    sink: {format: h264, path: out/lobby.mp4, segment_seconds: 60}
    zones: zones.yaml
"""
VALID_MANIFEST = """\
version: 1
cameras:
  - camera_id: lobby
    site: hall
    footage: [a.jpg, rtsp://10.0.0.5/1]
"""
VALID_CSV = "camera_id,site,footage\nlobby,hall,a.jpg;b.mp4\n"

KEYS = ["cameras", "camera_id", "zones", "id", "kind", "polygon", "exterior", "holes", "style", "mode", "color",
        "block", "strength", "detect", "detectors", "model", "every", "fail_policy", "name", "source", "sink",
        "path", "format", "segment_seconds", "footage", "site", "version", "stream_seconds", "privacy_mask",
        "摄像头1", "门-301", ""]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(KEYS))
VALUES = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(st.sampled_from(KEYS), kids, max_size=5)),
    max_leaves=40,
)
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "latin-1", "gbk", "utf-32"]


def _text_bytes(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


def _mutations(valid: str) -> st.SearchStrategy[bytes]:
    raw = valid.encode()
    return st.one_of(
        st.integers(0, len(raw)).map(lambda n: raw[:n]),  # truncated
        st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)).map(
            lambda t: raw[: t[0]] + bytes([t[1]]) + raw[t[0] + 1 :]),  # one byte changed
        st.tuples(st.integers(0, len(raw)), st.binary(max_size=30)).map(
            lambda t: raw[: t[0]] + t[1] + raw[t[0] :]),  # bytes inserted
        st.sampled_from(ENCODINGS).map(lambda e: _text_bytes(valid, e)),  # another encoding
    )


def _documents() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.text(max_size=200), st.sampled_from(ENCODINGS)).map(lambda t: _text_bytes(*t)),
        VALUES.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
        VALUES.map(lambda v: yaml.safe_dump({"cameras": [v]}, allow_unicode=True).encode()),
    )


FUZZ = settings(max_examples=int(os.environ.get("MASKING_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(loader: Callable[[Path], Any], data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "zones.yaml").write_text(VALID_ZONES, encoding="utf-8")
        (folder / "a.jpg").write_bytes(b"")
        path = folder / name
        path.write_bytes(data)
        try:
            loader(path)
        except MaskingError as exc:
            assert str(path) in str(exc) or str(folder) in str(exc), str(exc)


@FUZZ
@given(data=st.one_of(_documents(), _mutations(VALID_ZONES)))
def test_zones_loader_never_raises_anything_but_masking_errors(data: bytes) -> None:
    _check(load_zones, data, "fuzz.yaml")


@FUZZ
@given(data=st.one_of(_documents(), _mutations(VALID_SERVE)))
def test_serve_loader_never_raises_anything_but_masking_errors(data: bytes) -> None:
    _check(load_serve_config, data, "serve.yaml")


@FUZZ
@given(data=st.one_of(_documents(), _mutations(VALID_MANIFEST)))
def test_yaml_manifest_loader_never_raises_anything_but_masking_errors(data: bytes) -> None:
    _check(load_fleet, data, "fleet.yaml")


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), _mutations(VALID_CSV),
                      st.tuples(st.text(max_size=200), st.sampled_from(ENCODINGS)).map(lambda t: _text_bytes(*t))))
def test_csv_manifest_loader_never_raises_anything_but_masking_errors(data: bytes) -> None:
    _check(load_fleet, data, "fleet.csv")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(_documents(), _mutations(VALID_ZONES)))
def test_cli_exits_0_or_2_with_a_message(capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "zones.yaml"
        path.write_bytes(data)
        rc = main(["zones", "check", str(path)])
        out = capsys.readouterr()
    assert rc in (0, 2)
    if rc == 2:
        assert "masking zones: error:" in out.err and str(path) in out.err and "Traceback" not in out.err
