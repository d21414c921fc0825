"""Shared set-up for the vault tests: a vault made once per session, and recordings made with the
real engine (FakeDetector finding a bright square on synthetic frames) into that vault."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
from stream_helpers import H, SyntheticSource, W, camera, factory_for, make_frame

from masking.detect.base import FakeDetector, bright_box_script
from masking.stream.engine import CameraJob, MaskingPipeline, PipelineOptions
from masking.stream.sinks import H264Sink
from masking.stream.sources import FileSource, Source
from masking.vault.recorder import VaultSealer
from masking.vault.vault import Vault, init_vault
from masking.video.reader import StreamInfo
from masking.video.writer import VideoWriter

PASSPHRASES = {"alice": "alice-passphrase-1", "bob": "bob-passphrase-22", "carol": "carol-passphrase-333"}
CUSTODIANS = ["alice", "bob", "carol"]


def passphrase(name: str, confirm: bool = False) -> str:
    return PASSPHRASES[name.lower()]


def set_env(monkeypatch: object) -> None:
    for name, p in PASSPHRASES.items():
        monkeypatch.setenv(f"MASKING_PASSPHRASE_{name.upper()}", p)  # type: ignore[attr-defined]


def vault_template(root: Path) -> Path:
    """A 2-of-3 vault (alice, bob, carol), made once and copied by `fresh_vault`."""
    path = root / "vault-template"
    if not path.exists():
        init_vault(path, CUSTODIANS, 2, passphrase)
    return path


def fresh_vault(template: Path, dest: Path) -> Vault:
    shutil.copytree(template, dest)
    return Vault(dest)


def synthetic_clip(path: Path, n: int = 20) -> Path:
    """An H.264 file of the synthetic frames (a moving bright square), for yuv420p recordings."""
    info = StreamInfo(W, H, Fraction(25), Fraction(1, 12800), n, "h264")
    with VideoWriter(path, info, crf=10) as w:
        for i in range(n):
            w.write(make_frame(i, speed=4), i * 512)
    return path


def record(vault: Vault, out: Path, n: int = 20, layout: str = "bgr24", segment_seconds: float | None = None,
           fail_on: int | None = None) -> list[Path]:
    """Mask `n` synthetic frames with the real engine into `out` (segments if asked), sealing into `vault`."""
    source: Source
    if layout == "yuv420p":
        source = FileSource(synthetic_clip(out.with_name(out.stem + "_src.mp4"), n))
    else:
        source = SyntheticSource(n, speed=4)
    fake = FakeDetector(bright_box_script(), fail_on=(lambda i: i == fail_on) if fail_on is not None else None)
    sealer = VaultSealer(vault, "cam1", "tests")
    job = CameraJob("cam1", camera(), source, lambda info: H264Sink(out, info, segment_seconds=segment_seconds,
                                                                     crf=10, sealer=sealer),
                    sink_layouts=("bgr24", "yuv420p"), sealer=sealer, abort_on_error=True)
    (result,) = MaskingPipeline([job], PipelineOptions(detector_factory=factory_for(fake))).run()
    assert result.error is None, result.error
    return [Path(p) for p in result.outputs]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
