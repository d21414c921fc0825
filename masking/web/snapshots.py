"""Camera pictures for the console: an image file, a frame of a video file, or a live stream.

A stream gives a fresh frame on request (the project's own `StreamSource`, RTSP over TCP); the
console keeps the last one so the picture it masks and audits is the one the installer sees.
`name` is what may be shown or returned: a URL's password is replaced by `***`, and every error
message is scrubbed of it, so camera credentials never reach the browser.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from masking.audit import Auditor, AuditResult
from masking.audit.result import AuditFrame
from masking.config.zones import Camera
from masking.errors import InputError
from masking.stream.sources import LIVE_SCHEMES, ReconnectPolicy, StreamSource
from masking.video.images import is_image_path, read_image
from masking.video.reader import VideoReader

Image = npt.NDArray[np.uint8]


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class Snapshot(Protocol):
    """Where a camera's picture comes from."""

    @property
    def name(self) -> str:
        """What may be shown: the path, or the URL without its password."""

    def frame(self, fresh: bool = False) -> Image: ...
    def audit(self, auditor: Auditor, camera: Camera | None) -> AuditResult: ...


@dataclass
class _FileSnapshot:
    """A picture from a file; audits read the file as `masking audit` does."""

    path: Path

    @property
    def name(self) -> str:
        return str(self.path)

    def audit(self, auditor: Auditor, camera: Camera | None) -> AuditResult:
        return auditor.audit_path(self.path, camera)


class ImageSnapshot(_FileSnapshot):
    """A still image file; read again on each request (it may be replaced on disk)."""

    def frame(self, fresh: bool = False) -> Image:
        return read_image(self.path)


class VideoSnapshot(_FileSnapshot):
    """A video file: its first frame is the picture; audits sample the clip."""

    def frame(self, fresh: bool = False) -> Image:
        with VideoReader(self.path) as reader:
            for vf in reader.frames("bgr24"):
                return np.ascontiguousarray(vf.image)
        raise InputError(f"{self.path}: holds no video frame")


class StreamSnapshot:
    """A live stream: a fresh frame when asked, else the last one taken."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self.name = redact_url(url)
        self.timeout_s = timeout_s
        self._last: Image | None = None
        self._lock = threading.Lock()

    def _grab(self) -> Image:
        source = StreamSource(self._url, name=self.name, read_timeout_s=self.timeout_s,
                              reconnect=ReconnectPolicy(initial_s=0.5, max_s=2.0, give_up_after_s=self.timeout_s))
        stop = threading.Event()
        try:
            source.open(stop)
            for image, _pts, _tb in source.frames(stop):
                stop.set()
                if isinstance(image, np.ndarray) and image.ndim == 3:
                    return np.ascontiguousarray(image)
                break
        except InputError as exc:
            raise InputError(str(exc).replace(self._url, self.name)) from None
        finally:
            stop.set()
            source.close()
        raise InputError(f"{self.name}: the stream gave no frame")

    def frame(self, fresh: bool = False) -> Image:
        with self._lock:
            if fresh or self._last is None:
                self._last = self._grab()
            return self._last

    def audit(self, auditor: Auditor, camera: Camera | None) -> AuditResult:
        return auditor.audit_frames([AuditFrame(self.frame(), 0, None)], camera, self.name)


def open_snapshot(value: str) -> Snapshot:
    """An image file, a video file or a stream URL (rtsp://, http://, ...) as a `Snapshot`."""
    if value.startswith(LIVE_SCHEMES):
        return StreamSnapshot(value)
    path = Path(value)
    if not path.is_file():
        raise InputError(f"{value}: no such image or video file (or a stream URL: rtsp://, http://, ...)")
    return ImageSnapshot(path) if is_image_path(path) else VideoSnapshot(path)


def parse_snapshot_args(values: list[str]) -> dict[str, Snapshot]:
    """`CAMERA_ID=IMAGE_OR_URL` arguments as camera id -> snapshot (each camera once)."""
    out: dict[str, Snapshot] = {}
    for value in values:
        camera_id, sep, where = value.partition("=")
        if not sep or not camera_id or not where:
            shown = redact_url(where if sep else value)
            raise InputError(f"--snapshot {shown!r}: expected CAMERA_ID=IMAGE_OR_URL")
        if camera_id in out:
            raise InputError(f"--snapshot: camera {camera_id!r} given twice")
        out[camera_id] = open_snapshot(where)
    return out
