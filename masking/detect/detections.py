"""`Detections`: one frame's detections as validated parallel numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from masking.errors import MaskingError


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame.

    Attributes:
        xyxy: float32 (n, 4) boxes in frame pixels, x1 <= x2, y1 <= y2.
        confidence: float32 (n,) scores in [0, 1].
        class_id: int32 (n,) indices into `class_names`.
        class_names: the model's class names, index = class id (shared, not per box).
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int32]
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4) if np.size(self.xyxy) else np.zeros((0, 4), np.float32)
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cid = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        n = xyxy.shape[0]
        if conf.shape[0] != n or cid.shape[0] != n:
            raise MaskingError(
                f"Detections: parallel arrays disagree in length: xyxy {n}, confidence {conf.shape[0]}, "
                f"class_id {cid.shape[0]}"
            )
        if n:
            if not np.all(np.isfinite(xyxy)):
                raise MaskingError("Detections: xyxy holds NaN or infinite coordinates")
            if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
                raise MaskingError("Detections: boxes must satisfy x1 <= x2 and y1 <= y2")
            if np.any(conf < 0) or np.any(conf > 1.0 + 1e-6):
                raise MaskingError("Detections: confidence must lie in [0, 1]")
            if self.class_names and (cid.min() < 0 or cid.max() >= len(self.class_names)):
                raise MaskingError(
                    f"Detections: class_id outside 0..{len(self.class_names) - 1} for the given class_names"
                )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cid)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), tuple(class_names))

    @classmethod
    def merge(cls, items: Sequence[Detections]) -> Detections:
        """Concatenate detections of one frame from several detectors.

        Class names are unioned (in first-seen order) and class ids remapped onto that union.
        """
        items = list(items)
        if not items:
            return cls.empty()
        names: list[str] = []
        index: dict[str, int] = {}
        for d in items:
            for n in d.class_names:
                if n not in index:
                    index[n] = len(names)
                    names.append(n)
        ids = []
        for d in items:
            if d.class_names:
                lut = np.array([index[n] for n in d.class_names], dtype=np.int32)
                ids.append(lut[d.class_id] if len(d) else d.class_id)
            else:
                ids.append(d.class_id)
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.confidence for d in items]),
            np.concatenate(ids),
            tuple(names),
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice | int) -> Detections:
        """Select by boolean mask, integer indices or slice; always returns `Detections`."""
        if isinstance(index, (int, np.integer)):
            index = np.array([int(index)])
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names)

    @property
    def names(self) -> npt.NDArray[np.str_]:
        """Class name of each box (n,)."""
        if not self.class_names:
            return self.class_id.astype(str)
        return np.asarray(self.class_names, dtype=object)[self.class_id].astype(str) if len(self) else np.zeros(0, dtype=str)

    @property
    def area(self) -> npt.NDArray[np.float32]:
        """Box areas in pixels (n,)."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def with_classes(self, names: Sequence[str]) -> Detections:
        """Keep boxes whose class name is in `names`."""
        wanted = np.isin(np.asarray(self.class_names, dtype=object), list(names)) if self.class_names else np.zeros(0, bool)
        if not len(self) or not wanted.any():
            return self[np.zeros(len(self), dtype=bool)]
        return self[wanted[self.class_id]]

    def scaled(self, sx: float, sy: float) -> Detections:
        """Boxes multiplied by (sx, sy): map between resolutions."""
        return Detections(self.xyxy * np.array([sx, sy, sx, sy], np.float32), self.confidence, self.class_id, self.class_names)

    def grown(self, factor: float, width: int | None = None, height: int | None = None) -> Detections:
        """Boxes grown by `factor` about their centres, clipped to the frame when its size is given."""
        c = (self.xyxy[:, :2] + self.xyxy[:, 2:]) * 0.5
        half = (self.xyxy[:, 2:] - self.xyxy[:, :2]) * (0.5 * factor)
        out = np.concatenate([c - half, c + half], axis=1)
        if width is not None and height is not None:
            out = np.clip(out, 0, np.array([width, height, width, height], np.float32))
        return Detections(out, self.confidence, self.class_id, self.class_names)
