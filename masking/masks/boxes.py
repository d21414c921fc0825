"""`MaskBoxes`: the dynamic mask regions of one frame (already grown, in frame pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from masking.errors import MaskingError


@dataclass(frozen=True)
class MaskBoxes:
    """Regions to mask in one frame: boxes in full-resolution pixels and their shape.

    Attributes:
        xyxy: float32 (n, 4) boxes, already grown by their margin.
        ellipse: bool (n,) True = mask the inscribed ellipse, False = the whole box.
    """

    xyxy: npt.NDArray[np.float32]
    ellipse: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        ell = np.asarray(self.ellipse, bool).reshape(-1)
        if ell.shape[0] != xyxy.shape[0]:
            raise MaskingError(f"MaskBoxes: {xyxy.shape[0]} boxes but {ell.shape[0]} shape flags")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "ellipse", ell)

    @classmethod
    def empty(cls) -> MaskBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, bool))

    @classmethod
    def concat(cls, items: list[MaskBoxes]) -> MaskBoxes:
        if not items:
            return cls.empty()
        return cls(np.concatenate([i.xyxy for i in items]), np.concatenate([i.ellipse for i in items]))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def grown_by(self, pixels: float, width: int, height: int) -> MaskBoxes:
        """Every box grown by `pixels` on each side (expected motion), clipped to the frame."""
        d = np.array([-pixels, -pixels, pixels, pixels], np.float32)
        out = np.clip(self.xyxy + d, 0, np.array([width, height, width, height], np.float32))
        return MaskBoxes(out, self.ellipse)
