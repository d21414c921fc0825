"""Batch pre-processing for detectors: letterbox or stretch a BGR batch into an NCHW float tensor.

Every frame of a batch has the same size, so one `Geometry` describes the whole batch and maps
boxes from the network's input pixels back to frame pixels. Resizing is one `cv2.resize` per
frame (OpenCV has no batched resize); padding, channel order, scaling and the NHWC -> NCHW
transposition are single numpy operations on the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from masking.errors import DetectorError

Layout = Literal["center", "topleft", "stretch"]
PAD_VALUE = 114


@dataclass(frozen=True)
class Normalise:
    """How pixel values become network input: `(x - mean) * scale`, in RGB or BGR order."""

    rgb: bool = True
    mean: float = 0.0
    scale: float = 1.0 / 255.0


@dataclass(frozen=True)
class Geometry:
    """How a frame was placed into the network input, and how to undo it.

    input pixel = frame pixel * scale + pad, per axis.

    Attributes:
        scale_x, scale_y: input pixels per frame pixel.
        pad_x, pad_y: offset of the frame's top-left corner in the input (pixels).
        input_w, input_h: network input size (pixels).
        frame_w, frame_h: source frame size (pixels).
        resized_w, resized_h: size of the resized frame inside the input (pixels).
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    input_w: int
    input_h: int
    frame_w: int
    frame_h: int
    resized_w: int
    resized_h: int

    def to_frame(self, xyxy: npt.NDArray[np.floating], clip: bool = True) -> npt.NDArray[np.float32]:
        """Map (..., 4) boxes from input pixels to frame pixels, clipped to the frame by default."""
        b = np.asarray(xyxy, dtype=np.float32)
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], np.float32)
        out = (b - pad) / scale
        if clip:
            np.clip(out, 0.0, np.array([self.frame_w, self.frame_h, self.frame_w, self.frame_h], np.float32), out=out)
        return out

    def to_input(self, xyxy: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Map (..., 4) boxes from frame pixels to input pixels (the inverse of `to_frame`)."""
        b = np.asarray(xyxy, dtype=np.float32)
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], np.float32)
        return b * scale + pad


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= value."""
    return int(-(-int(value) // multiple) * multiple)


def plan(
    frame_wh: tuple[int, int],
    input_wh: tuple[int, int],
    layout: Layout = "center",
    stride: int | None = None,
) -> Geometry:
    """Where a frame of `frame_wh` goes in an input of `input_wh`.

    `center`/`topleft` keep the aspect ratio (Ultralytics' and YOLOX's letterbox: same rounding);
    `stretch` fills the input. With `stride`, a letterboxed input is shrunk to the smallest
    stride multiple that holds the resized frame (Ultralytics' `auto` letterbox for dynamic models).
    """
    fw, fh = int(frame_wh[0]), int(frame_wh[1])
    iw, ih = int(input_wh[0]), int(input_wh[1])
    if fw <= 0 or fh <= 0 or iw <= 0 or ih <= 0:
        raise DetectorError(f"cannot fit a {fw}x{fh} frame into a {iw}x{ih} input")
    if layout == "stretch":
        return Geometry(iw / fw, ih / fh, 0, 0, iw, ih, fw, fh, iw, ih)
    r = min(iw / fw, ih / fh)
    rw, rh = max(round(fw * r), 1), max(round(fh * r), 1)
    if stride:
        iw, ih = rw + (iw - rw) % stride, rh + (ih - rh) % stride
    dw, dh = iw - rw, ih - rh
    if layout == "center":
        px, py = round(dw / 2 - 0.1), round(dh / 2 - 0.1)
    else:
        px, py = 0, 0
    return Geometry(rw / fw, rh / fh, int(px), int(py), iw, ih, fw, fh, rw, rh)


def place(batch: npt.NDArray[np.uint8], geom: Geometry, pad_value: int = PAD_VALUE) -> npt.NDArray[np.uint8]:
    """Resize every frame and paste it into a padded (N, input_h, input_w, 3) uint8 canvas."""
    n = batch.shape[0]
    if geom.resized_w == geom.input_w and geom.resized_h == geom.input_h and geom.pad_x == 0 and geom.pad_y == 0:
        if geom.resized_w == geom.frame_w and geom.resized_h == geom.frame_h:
            return batch
        out = np.empty((n, geom.input_h, geom.input_w, 3), np.uint8)
        for k in range(n):
            cv2.resize(batch[k], (geom.input_w, geom.input_h), dst=out[k], interpolation=cv2.INTER_LINEAR)
        return out
    canvas = np.full((n, geom.input_h, geom.input_w, 3), pad_value, np.uint8)
    y0, x0 = geom.pad_y, geom.pad_x
    view = canvas[:, y0 : y0 + geom.resized_h, x0 : x0 + geom.resized_w]
    if geom.resized_w == geom.frame_w and geom.resized_h == geom.frame_h:
        view[...] = batch
    else:
        size = (geom.resized_w, geom.resized_h)
        for k in range(n):
            if view[k].flags.c_contiguous:  # full-width rows: resize straight into the canvas
                cv2.resize(batch[k], size, dst=view[k], interpolation=cv2.INTER_LINEAR)
            else:
                view[k] = cv2.resize(batch[k], size, interpolation=cv2.INTER_LINEAR)
    return canvas


def to_tensor(images: npt.NDArray[np.uint8], norm: Normalise) -> npt.NDArray[np.float32]:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) float32 `(x - mean) * scale`, channel order per `norm`."""
    chw = images.transpose(0, 3, 1, 2)
    if norm.rgb:
        chw = chw[:, ::-1]
    out = np.ascontiguousarray(chw, dtype=np.float32)
    if norm.mean:
        out -= np.float32(norm.mean)
    if norm.scale != 1.0:
        out *= np.float32(norm.scale)
    return out


def prepare(
    batch: npt.NDArray[np.uint8],
    input_wh: tuple[int, int],
    norm: Normalise,
    layout: Layout = "center",
    stride: int | None = None,
    pad_value: int = PAD_VALUE,
) -> tuple[npt.NDArray[np.float32], Geometry]:
    """Letterbox/stretch a (N, H, W, 3) BGR batch into an NCHW float32 tensor and its `Geometry`."""
    geom = plan((batch.shape[2], batch.shape[1]), input_wh, layout, stride)
    return to_tensor(place(batch, geom, pad_value), norm), geom


def pad_to_multiple(
    batch: npt.NDArray[np.uint8], input_wh: tuple[int, int] | None, multiple: int, pad_value: int = 0
) -> tuple[npt.NDArray[np.uint8], Geometry]:
    """Stretch frames to `input_wh` (or keep their size), then pad bottom/right to a `multiple`.

    This is how YuNet (cv2.FaceDetectorYN) feeds its network.
    """
    fh, fw = batch.shape[1], batch.shape[2]
    tw, th = (fw, fh) if input_wh is None else (int(input_wh[0]), int(input_wh[1]))
    iw, ih = round_up(tw, multiple), round_up(th, multiple)
    geom = Geometry(tw / fw, th / fh, 0, 0, iw, ih, fw, fh, tw, th)
    return place(batch, geom, pad_value), geom
