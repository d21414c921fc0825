"""Still images: read, write atomically, list a folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from masking._atomic import atomic_write
from masking.errors import InputError, OutputError
from masking.limits import check_image_pixels
from masking.media import IMAGE_SUFFIXES, is_image_path


def read_image(path: str | Path) -> npt.NDArray[np.uint8]:
    """Read an image as BGR uint8 (H, W, 3); `InputError` naming the file if it cannot be read."""
    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{p}: cannot read image: {exc.strerror or exc}") from exc
    check_image_pixels(data[:262144].tobytes(), p)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # OpenCV's own limits (OPENCV_IO_MAX_IMAGE_PIXELS), formats we cannot probe
        image = None
    if image is None:
        raise InputError(f"{p}: not a readable image (corrupt, empty or unsupported format)")
    return np.asarray(image, np.uint8)


def write_image(path: str | Path, image: npt.NDArray[np.uint8]) -> None:
    """Write an image atomically: encoded in memory, written to a temp name, then renamed."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not is_image_path(p):
        raise OutputError(f"{p}: unsupported image suffix {p.suffix!r} (use one of {sorted(IMAGE_SUFFIXES)})")
    ok, buf = cv2.imencode(suffix, image)
    if not ok:
        raise OutputError(f"{p}: cannot encode image")
    atomic_write(p, buf.tobytes(), "image")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (jpg, jpeg, png, bmp, webp)."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: not a folder")
    return sorted(
        p for p in d.iterdir() if p.is_file() and is_image_path(p) and not p.name.startswith(".")
    )
