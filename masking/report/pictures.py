"""The pictures that reports and rescan stores hold: safe to show, sized for a table.

A report is read by more people than the recordings (a fleet report with thousands of thumbnails
goes round a company by mail), so by default a picture shows what the camera records, not more:

1. the camera's `privacy_mask` and `prohibited_view` zones are masked by `ZoneMasker`, the code
   that masks recordings, with each zone's own style;
2. faces are blurred: YuNet (`load_detector("yunet")`, the project's face model) finds them on the
   full-resolution frame, and each face box, grown by `FACE_MARGIN` on every side, is blurred by
   the masker with a box kernel of `FACE_KERNEL` x the face's size. Measured with
   `benchmarks/report_privacy.py ../shared/eval/dev` (OpenCV's own YuNet as the reference): of 623
   faces the reference finds in 22 dev photos, 2 remain in the safe full-resolution frames and 3
   detections in the 320 px pictures (19 of 22 photos clean), against 147 in unmasked pictures;
3. **fail closed**: if the face model is not installed or fails, the whole picture is blurred and a
   banner on it says why (`Picture.privacy == "blurred"`);
4. the picture is downscaled to `PICTURE_SIDE` pixels on its long side and annotated (zones,
   evidence boxes, proposed masks) with `masking.annotate.annotate`, then encoded as JPEG
   quality `JPEG_QUALITY` with optimised Huffman tables (about 14 kB on the dev photos).

`show_unmasked=True` (`masking audit/rescan --show-unmasked`) skips steps 1-3: for an inspector
looking at one camera, who needs to see what the evidence is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masking.annotate import EvidenceMark, annotate, draw_banner
from masking.config.zones import BlurStyle, Camera
from masking.detect.base import Detector
from masking.errors import MaskingError, OutputError
from masking.masks.apply import ZoneMasker
from masking.masks.boxes import MaskBoxes
from masking.report import palette

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
Privacy = Literal["masked", "blurred", "unmasked"]

PICTURE_SIDE = 320  # long side of every report picture and rescan thumbnail, in pixels
JPEG_QUALITY = 80
FACE_MODEL = "yunet"
FACE_MARGIN = 0.25  # each face box grows by this share of its size on every side (hair, ears, chin)
FACE_KERNEL = 1.5  # blur kernel = 1.5 x the face's long side (9-255 px): a smooth smear, no face left
_WHOLE_BLUR_CELLS = 12  # fail closed: the picture is reduced to about 12 cells across, then smoothed


@dataclass(frozen=True)
class Picture:
    """A report picture: JPEG bytes and how it was made safe."""

    jpeg: bytes
    privacy: Privacy  # masked: zones masked, faces blurred; blurred: fail closed; unmasked: as asked
    faces: int = 0  # faces blurred
    note: str = ""  # why the picture is blurred (fail closed), in English


class PrivacyFilter:
    """Makes frames safe to show: zones masked as recorded, faces blurred, fail closed.

    Args:
        show_unmasked: return frames as they are (the `--show-unmasked` option).
        face_detector: the face detector to use; None loads `FACE_MODEL` on first use.
        threads: ONNX Runtime threads for the face model.
    """

    def __init__(self, show_unmasked: bool = False, face_detector: Detector | None = None, threads: int = 1) -> None:
        self.show_unmasked = show_unmasked
        self._detector = face_detector
        self._threads = threads
        self._error: str | None = None
        self._maskers: dict[str, ZoneMasker] = {}

    def _faces(self) -> Detector | None:
        if self._detector is None and self._error is None:
            from masking.detect.factory import load_detector

            try:
                self._detector = load_detector(FACE_MODEL, threads=self._threads)
            except MaskingError as exc:
                self._error = f"face model {FACE_MODEL!r} unavailable ({exc})"
                log.warning("report pictures: %s; pictures are blurred whole (fail closed)", self._error)
        return self._detector

    def _masker(self, camera: Camera | None) -> ZoneMasker:
        key = camera.model_dump_json() if camera is not None else ""
        masker = self._maskers.get(key)
        if masker is None:
            masker = self._maskers[key] = ZoneMasker(camera if camera is not None else Camera(camera_id="report"))
        return masker

    def apply(self, frame: Image, camera: Camera | None) -> tuple[Image, Privacy, int, str]:
        """A safe copy of a BGR frame: (image, privacy, faces blurred, note). Never returns the
        frame unmasked unless `show_unmasked`."""
        img = np.ascontiguousarray(frame, np.uint8).copy()
        if self.show_unmasked:
            return img, "unmasked", 0, ""
        masker = self._masker(camera)
        detector = self._faces()
        if detector is None:
            return blur_whole(img), "blurred", 0, self._error or "no face model"
        try:
            faces = detector.detect(img[None])[0]
        except Exception as exc:  # any failure of the model: fail closed, never show the faces
            log.warning("report pictures: face detection failed (%s: %s); picture blurred whole", type(exc).__name__, exc)
            return blur_whole(img), "blurred", 0, f"face detection failed ({type(exc).__name__})"
        masker.apply(img)
        if len(faces):
            h, w = img.shape[:2]
            xyxy = faces.xyxy.astype(np.float32)
            size = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1.0)
            grown = np.concatenate([xyxy[:, :2] - FACE_MARGIN * size, xyxy[:, 2:] + FACE_MARGIN * size], axis=1)
            grown = np.clip(grown, 0, np.array([w, h, w, h], np.float32))
            kernels = (np.clip(FACE_KERNEL * size.max(axis=1), 9, 255).astype(int) | 1).tolist()
            for k in sorted(set(kernels)):  # one masker call per kernel size
                sel = np.array([kk == k for kk in kernels])
                masker.apply_boxes(img, MaskBoxes(grown[sel], np.zeros(int(sel.sum()), bool)), BlurStyle(mode="blur", strength=k))
        return img, "masked", len(faces), ""


def blur_whole(image: Image) -> Image:
    """The whole picture blurred beyond recognition (about `_WHOLE_BLUR_CELLS` cells across)."""
    h, w = image.shape[:2]
    cell = max(1, max(h, w) // _WHOLE_BLUR_CELLS)
    small = cv2.resize(image, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def downscale(image: Image, side: int = PICTURE_SIDE) -> Image:
    """`image` with its long side at most `side` pixels (area interpolation)."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise OutputError("cannot encode a report picture as JPEG")
    return bytes(buf.tobytes())


def report_picture(
    frame: Image,
    camera: Camera | None,
    privacy: PrivacyFilter,
    evidence: Sequence[EvidenceMark] = (),
    proposals: Iterable[Sequence[Sequence[float]]] = (),
    side: int = PICTURE_SIDE,
    labels: bool = True,
    segmentation: Mapping[str, Any] | None = None,
) -> Picture:
    """The picture of a view for a report or a store: made safe (`privacy`), downscaled, with the
    audit's coarse segmentation overlay (`masking.audit.overlay`) and annotated."""
    from masking.audit.overlay import draw_segmentation

    safe, mode, faces, note = privacy.apply(frame, camera)
    img = annotate(draw_segmentation(downscale(safe, side), segmentation), camera, evidence, proposals, labels=labels)
    if mode == "blurred":
        draw_banner(img, f"blurred: {note}"[:80], palette.ERROR)
    return Picture(encode_jpeg(img), mode, faces, note)
