"""The recording side of a vault: one `VaultSealer` per camera, used by the streaming engine.

* The mask stage calls `capture` after drawing the static zones and before drawing the dynamic
  masks; it copies the original pixels of the regions about to be overwritten (the whole frame,
  zones already masked, when the fail policy blacks it).
* The H.264 sink opens a sidecar with each output segment (`open`), seals each written frame's
  regions into it (the segment, its PTS and the place are bound into the encryption there: only
  the sink knows which segment a frame lands in), and calls `closed` when the segment is complete:
  the sidecar is finished and renamed, both files are hashed, and a `segment` entry is appended to
  the register (checkpointed with the recorder key).

Recording needs only the vault's public configuration, the recorder key and the register.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from masking.errors import MaskingError
from masking.vault._codec import operator, sha256_file
from masking.vault.seal import Regions, SidecarWriter, capture
from masking.vault.vault import Vault

log = logging.getLogger(__name__)


def configured_by(zones: str | Path | None) -> str:
    """Who set up a recording, as the register records it: user@host and the zones file used."""
    return f"{operator()} (zones {Path(zones).resolve()})" if zones else operator()


class VaultSealer:
    """Seals one camera's dynamic regions into sidecars and registers its segments."""

    def __init__(self, vault: Vault | str | Path, camera: str, configured_by: str | None = None) -> None:
        self.vault = vault if isinstance(vault, Vault) else Vault(vault)
        self.camera = camera
        self.configured_by = configured_by or operator()
        if self.vault.recorder is None:
            log.warning("vault %s: no recorder key here; segments are registered without a checkpoint",
                        self.vault.path)

    def capture(self, img: npt.NDArray[np.uint8], xyxy: npt.NDArray[np.float32] | None, layout: str) -> Regions:
        """Original pixels under `xyxy` (None: the whole frame), before they are masked."""
        return capture(img, xyxy, layout)

    def open(self, video: Path, layout: str, width: int, height: int, time_base: Fraction) -> SidecarWriter:
        return SidecarWriter(video, self.vault.config, self.camera, layout, width, height, time_base)

    def closed(self, video: Path, sidecar: SidecarWriter) -> Path:
        """The video segment is complete: finish its sidecar and register both files."""
        try:
            side = sidecar.close()
        except MaskingError as exc:
            self.vault.register.append("seal_lost", {"file": video.name, "path": str(video.resolve()),
                                                     "error": str(exc), "by": self.configured_by}, self.camera)
            raise
        tb = Fraction(sidecar.time_base)
        body = {
            "file": video.name, "path": str(video.resolve()), "sha256": sha256_file(video),
            "size": video.stat().st_size, "sidecar": side.name, "sidecar_path": str(side.resolve()),
            "sidecar_sha256": sha256_file(side), "sidecar_size": side.stat().st_size,
            "start_s": float((sidecar.first_pts or 0) * tb), "end_s": float((sidecar.last_pts or 0) * tb),
            "frames": sidecar.frames, "frames_sealed": sidecar.frames_sealed, "regions": sidecar.regions,
            "layout": sidecar.layout, "configured_by": self.configured_by, "recorded_by": operator(),
        }
        self.vault.register.append("segment", body, self.camera)
        log.info("vault: sealed %d regions of %d frames into %s", sidecar.regions, sidecar.frames, side)
        return side
