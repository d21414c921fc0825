"""`masking serve`: config validation, and SIGTERM stopping a running server cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from masking.errors import ConfigError
from masking.stream.build import jobs_from_config
from masking.stream.config import load_serve_config, resolve_camera
from masking.stream.sinks import segment_path
from masking.video.reader import VideoReader

ROOT = Path(__file__).resolve().parents[1]

ZONES = {"cameras": [
    {"camera_id": "hall", "zones": [{"id": "z", "kind": "privacy_mask", "polygon": [[0, 0], [0.3, 0], [0.3, 0.3], [0, 0.3]]}]},
    {"camera_id": "yard", "zones": [{"id": "w", "kind": "watch", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}]},
]}


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_config_is_strict_and_names_the_problem(tmp_path: Path) -> None:
    _write(tmp_path / "zones.yaml", ZONES)
    good = {"cameras": [{"name": "a", "source": "in.mp4", "sink": {"path": "a.mp4"}, "zones": "zones.yaml", "camera": "hall"}]}
    cfg = load_serve_config(_write(tmp_path / "ok.yaml", good))
    assert cfg.cameras[0].zones == tmp_path / "zones.yaml" and cfg.cameras[0].sink.path == tmp_path / "a.mp4"
    bad = {"cameras": [{"name": "a", "source": "x.mp4", "sink": {"path": "a.mp4", "fps": 3}, "zones": "zones.yaml"}]}
    with pytest.raises(ConfigError, match="fps"):
        load_serve_config(_write(tmp_path / "bad.yaml", bad))
    dup = {"cameras": [good["cameras"][0], {**good["cameras"][0], "sink": {"path": "b.mp4"}}]}
    with pytest.raises(ConfigError, match="unique"):
        load_serve_config(_write(tmp_path / "dup.yaml", dup))
    nodet = {"cameras": [{**good["cameras"][0], "detection": {"fail_policy": "zones"}}]}
    with pytest.raises(ConfigError, match="no detector"):
        jobs_from_config(load_serve_config(_write(tmp_path / "nodet.yaml", nodet)), "nodet.yaml")
    withdet = {"cameras": [{**good["cameras"][0], "detection": {"detect": "faces", "every": 2, "fail_policy": "zones"}}]}
    cam = resolve_camera(load_serve_config(_write(tmp_path / "det.yaml", withdet)).cameras[0], "det.yaml")
    assert cam.detect is not None and cam.detect.every == 2 and cam.detect.fail_policy == "zones"
    assert [d.model for d in cam.detect.detectors] == ["yunet"]
    seg = {"cameras": [{**good["cameras"][0], "sink": {"format": "jpeg-dir", "path": "j", "segment_seconds": 5}}]}
    with pytest.raises(ConfigError, match="segment_seconds"):
        load_serve_config(_write(tmp_path / "seg.yaml", seg))


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_leaves_only_complete_files(shared_dir: Path, tmp_path: Path) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"  # 320x240, 50 frames, 16.7 s
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(clip, inbox / "000.mp4")
    out = tmp_path / "out"
    out.mkdir()
    _write(tmp_path / "zones.yaml", ZONES)
    cfg = {
        "stats_interval_s": 1,
        "cameras": [
            # watched folder: after the first segment it waits for more, until SIGTERM
            {"name": "hall", "source": "inbox", "sink": {"path": "out/hall.mp4", "segment_seconds": 5},
             "zones": "zones.yaml", "camera": "hall"},
            {"name": "yard", "source": str(clip), "sink": {"format": "jpeg-dir", "path": "out/yard"},
             "zones": "zones.yaml", "camera": "yard"},
        ],
    }
    config = _write(tmp_path / "serve.yaml", cfg)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "masking", "serve", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not segment_path(out / "hall.mp4", 2).exists():  # segments 0-2 closed, segment 3 still open
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve produced no segments"
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None, "serve should keep watching the folder"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hall_00000.mp4", "hall_00001.mp4", "hall_00002.mp4", "hall_00003.mp4", "yard"], names
    total = 0
    for k in range(4):
        with VideoReader(segment_path(out / "hall.mp4", k)) as r:
            total += sum(1 for _ in r.frames("yuv420p"))
    assert total == 50
    jpegs = sorted(p.name for p in (out / "yard").iterdir())
    assert jpegs == [f"frame_{i:08d}.jpg" for i in range(50)]  # no temp files
    assert "final camera hall: in=50 out=50 dropped=0" in err
