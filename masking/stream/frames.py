"""Frames as they travel through the masking pipeline.

`SourceFrame` is what a source produced (possibly corrupt); `MaskedFrame` is what the masking
stage produced. Sinks accept only `MaskedFrame`, and only the masking stage can make one: its
constructor checks a module-private seal that `seal()` hands out, so "a sink received a frame that
never went through the masker" is a type error at run time, not a convention.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from masking.errors import MaskingError
from masking.video.layout import PixelLayout

Image = npt.NDArray[np.uint8]


class MaskedBy(str, enum.Enum):
    """Why an output frame looks the way it does (one value per frame)."""

    detections = "detections"  # this frame's own detection result (plus static zones)
    held = "held"  # an earlier detection result, grown by the expected motion (plus static zones)
    policy_full = "policy_full"  # fail policy `full`: the whole frame blacked
    policy_zones = "policy_zones"  # fail policy `zones`: every zone + last detections grown
    static_only = "static_only"  # no detection configured: static zones only

    @property
    def by_policy(self) -> bool:
        """Whether the frame was masked by the fail-closed policy."""
        return self in (MaskedBy.policy_full, MaskedBy.policy_zones)


@dataclass
class SourceFrame:
    """One decoded frame (or a corrupt one) with its source timestamp.

    Attributes:
        index: 0-based count of frames this camera's source delivered (corrupt ones included).
        image: uint8 as decoded, in the camera's layout: BGR (H, W, 3) or yuv420p planes
            (H*3/2, W); anything else is treated as corrupt.
        pts: presentation timestamp in `time_base` units, as in the source (never wall clock).
        time_base: seconds per pts unit.
        arrival: `time.monotonic()` when the frame entered the pipeline (latency accounting only).
        corrupt: why the source could not deliver a valid image, or None.
        deadline: for a frame submitted to detection, the monotonic time after which it is
            released without its result.
    """

    index: int
    image: Any
    pts: int
    time_base: Fraction
    arrival: float = field(default_factory=time.monotonic)
    corrupt: str | None = None
    deadline: float | None = None  # key frames: monotonic time by which detection must answer

    @property
    def seconds(self) -> float:
        """The pts in seconds."""
        return float(self.pts * self.time_base)


class _Seal:
    """Proof that an object was made by the masking stage; see `masking.stream.masker`."""

    __slots__ = ()


_SEAL = _Seal()


def seal() -> _Seal:
    """The seal. Only `masking.stream.masker` calls this."""
    return _SEAL


@dataclass(frozen=True)
class MaskedFrame:
    """A frame that went through the masker: the only thing a sink writes.

    Attributes:
        index: the source frame index.
        image: masked uint8 frame: BGR (H, W, 3), or yuv420p planes (H*3/2, W) per `layout`.
        pts, time_base: the source timestamp, unchanged.
        masked_by: which rule masked the frame.
        arrival: when the source frame entered the pipeline.
        regions: with a vault, the original pixels of the dynamic regions, captured before they were
            masked (the sink seals them into the segment's sidecar); None otherwise.
    """

    index: int
    image: Image
    pts: int
    time_base: Fraction
    masked_by: MaskedBy
    arrival: float
    _seal: _Seal
    layout: PixelLayout | str = PixelLayout.bgr24  # a PixelLayout once made (a name is converted)
    regions: Any = None  # vault: original pixels under the dynamic masks (masking.vault.seal.Regions)

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise MaskingError("MaskedFrame can only be made by the masking stage")
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise MaskingError(f"MaskedFrame {self.index}: image must be a uint8 array")
        try:
            layout = PixelLayout(self.layout)
        except ValueError:
            raise MaskingError(f"MaskedFrame {self.index}: unknown layout {self.layout!r}") from None
        object.__setattr__(self, "layout", layout)
        if layout is PixelLayout.bgr24 and not (img.ndim == 3 and img.shape[2] == 3):
            raise MaskingError(f"MaskedFrame {self.index}: bgr24 image must be (H, W, 3), got {img.shape}")
        if layout is PixelLayout.yuv420p and not (img.ndim == 2 and img.shape[0] % 3 == 0):
            raise MaskingError(f"MaskedFrame {self.index}: yuv420p image must be (H*3/2, W), got {img.shape}")


def require_masked(frame: object) -> MaskedFrame:
    """Raise unless `frame` is a `MaskedFrame` (sinks call this on everything they receive)."""
    if not isinstance(frame, MaskedFrame):
        raise MaskingError(f"sink refused {type(frame).__name__}: only MaskedFrame may be written")
    return frame
