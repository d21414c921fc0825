"""The media vocabulary: which file names are still images or video clips, which sources are streams.

One module for every part that sorts inputs: `masking audit` and `masking filter` inputs, fleet
manifests and rescan footage, the image reader/writer, the video reader and the streaming sources.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

# Still images masking reads and writes (OpenCV codecs).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# Video clips (any container FFmpeg demuxes; these are the names a folder or a glob is searched for).
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".flv"})
# Live stream URLs: read until they end or fail, never looked for on disk.
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://", "tcp://")

MediaKind = Literal["image", "video"]
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_image_path(path: str | Path) -> bool:
    """Whether the name ends in an image suffix (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_path(path: str | Path) -> bool:
    """Whether the name ends in a video clip suffix (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def media_kind(path: str | Path) -> MediaKind | None:
    """`image`, `video`, or None for any other name."""
    if is_image_path(path):
        return "image"
    if is_video_path(path):
        return "video"
    return None


def is_stream_url(source: str | Path) -> bool:
    """Whether a source is a live stream URL (`rtsp://`, `http(s)://`, ...; any case)."""
    return isinstance(source, str) and source.lower().startswith(STREAM_SCHEMES)


def is_url(source: str | Path) -> bool:
    """Whether a source is a URL of any scheme (`file://` included) rather than a path."""
    return isinstance(source, str) and _URL.match(source) is not None
