"""Restore the original pixels under the dynamic masks of a masked video (after `authorize`).

The masked file is read with the normal reader in the layout its regions were sealed in, each
frame's authenticated regions (looked up by PTS) are pasted back, and the result is written with
the normal writer (temporary name until complete). Static zones stay masked: they were drawn before
the regions were captured. `Selection` restricts which frames get their regions back; the others
are written as they are (masked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from masking.errors import ConfigError, TamperError
from masking.vault.seal import SidecarReader, paste
from masking.video.reader import VideoReader
from masking.video.writer import VideoWriter


@dataclass(frozen=True)
class Selection:
    """Which frames are restored: an inclusive frame-index range and/or a time span in seconds."""

    first: int | None = None
    last: int | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def parse(cls, frames: str | None, start: float | None, end: float | None) -> Selection:
        first = last = None
        if frames:
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", frames)
            if not m:
                raise ConfigError(f"--frames: expected N or A-B (0-based frame indices), got {frames!r}")
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) is not None else first
            if last < first:
                raise ConfigError(f"--frames: {frames!r} ends before it starts")
        if start is not None and end is not None and end < start:
            raise ConfigError(f"--end {end} lies before --start {start}")
        return cls(first, last, start, end)

    def wants(self, index: int, seconds: float) -> bool:
        return ((self.first is None or index >= self.first) and (self.last is None or index <= self.last)
                and (self.start is None or seconds >= self.start) and (self.end is None or seconds <= self.end))

    def describe(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RestoreStats:
    frames: int = 0
    frames_restored: int = 0
    regions: int = 0


def restore_video(masked: Path, output: Path, sidecar: SidecarReader, selection: Selection | None = None,
                  crf: int = 18, preset: str = "veryfast") -> RestoreStats:
    """Write `output`: `masked` with the sealed regions of the selected frames pasted back."""
    selection = selection or Selection()
    stats = RestoreStats()
    sealed_first = sidecar.summary.get("first_pts")
    with VideoReader(masked) as reader:
        info = reader.info
        if (info.width, info.height) != (sidecar.width, sidecar.height):
            raise TamperError(f"segment {sidecar.segment}: sealed for {sidecar.width}x{sidecar.height}, "
                              f"the video is {info.width}x{info.height}")
        first: int | None = None
        with VideoWriter(output, info, crf=crf, preset=preset, input_format=sidecar.layout) as writer:
            for vf in reader.frames(sidecar.layout):
                pts = vf.pts if vf.pts is not None else vf.index
                first = pts if first is None else first
                tb = vf.time_base or info.time_base
                if selection.wants(vf.index, float(pts * tb)):
                    regions = sidecar.regions(vf.index)
                    for r in regions:
                        if sealed_first is not None and r.pts - sealed_first != pts - first:
                            raise TamperError(f"segment {sidecar.segment}: frame {vf.index} has PTS {pts}, its sealed "
                                              f"regions belong to PTS {r.pts}: frames were added, dropped or reordered")
                        paste(vf.image, r.rect, r.pixels, sidecar.layout)
                    stats.regions += len(regions)
                    stats.frames_restored += bool(regions)
                writer.write(vf.image, vf.pts)
                stats.frames += 1
            if stats.frames != sidecar.summary.get("frames", stats.frames):
                raise TamperError(f"segment {sidecar.segment}: the video has {stats.frames} frames, "
                                  f"{sidecar.summary.get('frames')} were sealed")
    return stats
