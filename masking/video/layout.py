"""The pixel layouts frames travel in: one type instead of format strings.

* `bgr24`: (H, W, 3) uint8, OpenCV's BGR order; what detectors, images, raw pipes and JPEGs use.
* `yuv420p`: (H*3/2, W) uint8 planes Y, U, V back to back (PyAV's `to_ndarray("yuv420p")`), even
  sizes only; the video path when the source and the sink both take it (no colour conversion).

`PixelLayout` is a `str` enum, so a member compares equal to its FFmpeg pixel-format name and can be
passed wherever FFmpeg expects one (`.value` for libraries that insist on a plain `str`).
"""

from __future__ import annotations

import enum


class PixelLayout(str, enum.Enum):
    """The array layout of a frame (named after the FFmpeg pixel format it holds)."""

    bgr24 = "bgr24"
    yuv420p = "yuv420p"

    def __str__(self) -> str:
        return self.value

    def shape(self, width: int, height: int) -> tuple[int, ...]:
        """The array shape of one (width x height) frame in this layout."""
        if self is PixelLayout.yuv420p:
            return (height * 3 // 2, width)
        return (height, width, 3)

    @staticmethod
    def planar_ok(width: int, height: int) -> bool:
        """Whether a frame of this size can travel as yuv420p planes (both sides even)."""
        return width % 2 == 0 and height % 2 == 0
