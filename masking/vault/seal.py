"""Sealed sidecars: the original pixels under dynamic masks, encrypted for the vault.

`capture` copies the regions about to be masked (pixel rectangles of the boxes, overlapping ones
merged; even-aligned on yuv420p planes so luma and chroma blocks match); it is called by the mask
stage after the static zones are drawn and before the dynamic masks are, so static zones are never
in a sealed region. `SidecarWriter` writes them next to an output segment (`SEGMENT.sealed`):

    "MASKSEAL" | u32 len | header (canonical JSON) | u32 len | wrapped data key | records...

* header: format, vault id, camera, segment file name, layout, frame size, time base, the
  ephemeral X25519 public key, creation time.
* data key: a fresh AES-256 key per segment, wrapped with AES-256-GCM under
  HKDF-SHA256(X25519(ephemeral, vault sealing key)); the whole header is the associated data.
* record: u32 len | kind u8, seq u64, pts i64, frame u32, region u16, x0 y0 x1 y1 u32 | AES-GCM
  ciphertext of the region's bytes, zlib-compressed (level 1: ~2.9x on camera frames, cheap; the
  bytes are the planes as captured, so the restoration is lossless). The nonce is the record's sequence number (unique per key, and
  the key is never reused); the associated data is SHA-256(header) || the record head, so a record
  is bound to its vault, camera, segment, format version, frame PTS and place, and its position.
* the last record (kind END) seals the counts: a cut tail, a dropped or reordered record, or bytes
  after the end are all detected.

`SidecarReader` needs the vault's sealing private key (custodians): it authenticates every record
and names the segment and frame of the first one that fails.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from masking.errors import OutputError, TamperError, VaultError
from masking.masks.apply import _pixel_rects
from masking.vault._codec import b64, canonical, iso, now_utc, unb64
from masking.vault.keys import VaultConfig

MAGIC = b"MASKSEAL"
VERSION = 1
SUFFIX = ".sealed"
KIND_REGION, KIND_END = 1, 2
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<BQqIHIIII")

Image = npt.NDArray[np.uint8]


def sidecar_path(video: Path) -> Path:
    """`OUT.mp4` -> `OUT.mp4.sealed`."""
    return video.with_name(video.name + SUFFIX)


# ---------------------------------------------------------------- capture / paste (pixels only)
@dataclass(frozen=True)
class Regions:
    """Original pixels of one frame's dynamic regions, captured before they are masked."""

    rects: npt.NDArray[np.int64]  # (n, 4) x0, y0, x1, y1
    pixels: tuple[bytes, ...]


def merge_rects(rects: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Overlapping rectangles replaced by the bounding rectangle of each overlapping group."""
    while len(rects) > 1:
        a, b = rects[:, None, :], rects[None, :, :]
        touch = (a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2]) & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])
        group = touch.argmax(axis=1)  # the first rectangle each one overlaps (itself at the latest)
        if (group == np.arange(len(rects))).all():
            return rects
        uniq, label = np.unique(group, return_inverse=True)
        out = np.empty((len(uniq), 4), np.int64)
        out[:, :2] = np.iinfo(np.int64).max
        out[:, 2:] = np.iinfo(np.int64).min
        np.minimum.at(out[:, 0], label, rects[:, 0])
        np.minimum.at(out[:, 1], label, rects[:, 1])
        np.maximum.at(out[:, 2], label, rects[:, 2])
        np.maximum.at(out[:, 3], label, rects[:, 3])
        rects = out
    return rects


def _planes(buf: Image, width: int, height: int) -> tuple[Image, Image, Image]:
    flat = buf.reshape(-1)
    n_y, n_c = width * height, (width // 2) * (height // 2)
    return (flat[:n_y].reshape(height, width), flat[n_y : n_y + n_c].reshape(height // 2, width // 2),
            flat[n_y + n_c : n_y + 2 * n_c].reshape(height // 2, width // 2))


def capture(img: Image, xyxy: npt.NDArray[np.float32] | None, layout: str) -> Regions:
    """Copy the pixels under boxes `xyxy` (None: the whole frame) of a bgr24 or yuv420p frame."""
    height, width = (img.shape[0] * 2 // 3, img.shape[1]) if layout == "yuv420p" else img.shape[:2]
    if xyxy is None:
        rects = np.array([[0, 0, width, height]], np.int64)
    else:
        rects = _pixel_rects(np.asarray(xyxy, np.float32).reshape(-1, 4), width, height)
        if layout == "yuv420p":  # even-aligned: the chroma block covers exactly the luma block
            rects = rects.copy()
            rects[:, :2] &= ~1
            rects[:, 2:] = np.minimum((rects[:, 2:] + 1) & ~1, [width, height])
        rects = merge_rects(rects[(rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])])
    if layout == "yuv420p":
        y, u, v = _planes(img, width, height)
        pixels = tuple(
            y[y0:y1, x0:x1].tobytes() + u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].tobytes()
            + v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].tobytes()
            for x0, y0, x1, y1 in rects.tolist())
    else:
        pixels = tuple(img[y0:y1, x0:x1].tobytes() for x0, y0, x1, y1 in rects.tolist())
    return Regions(rects, pixels)


def region_size(rect: tuple[int, int, int, int], layout: str) -> int:
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    return w * h * 3 // 2 if layout == "yuv420p" else w * h * 3


def paste(img: Image, rect: tuple[int, int, int, int], data: bytes, layout: str) -> None:
    """Put a captured region's bytes back into a frame of the same layout and size, in place."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    if layout == "yuv420p":
        height, width = img.shape[0] * 2 // 3, img.shape[1]
        y, u, v = _planes(img, width, height)
        buf = np.frombuffer(data, np.uint8)
        n_y, n_c = w * h, (w // 2) * (h // 2)
        y[y0:y1, x0:x1] = buf[:n_y].reshape(h, w)
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = buf[n_y : n_y + n_c].reshape(h // 2, w // 2)
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = buf[n_y + n_c :].reshape(h // 2, w // 2)
    else:
        img[y0:y1, x0:x1] = np.frombuffer(data, np.uint8).reshape(h, w, 3)


# ---------------------------------------------------------------- key wrapping
def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                info=b"masking-seal-wrap-v1").derive(shared)


def _aad(header_digest: bytes, head: bytes) -> bytes:
    return header_digest + head


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(12, "big")


# ---------------------------------------------------------------- writer
class SidecarWriter:
    """Seals the regions of one output segment into `SEGMENT.sealed` (temporary name until closed)."""

    def __init__(self, video: Path, config: VaultConfig, camera: str, layout: str, width: int, height: int,
                 time_base: Fraction) -> None:
        self.path = sidecar_path(video)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        self.layout = str(getattr(layout, "value", layout))  # a plain name (layouts may be str enums)
        self.time_base = time_base
        eph = X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes_raw()
        header = {"format": VERSION, "vault_id": config.vault_id, "camera": camera, "segment": video.name,
                  "layout": self.layout, "width": width, "height": height,
                  "time_base": f"{time_base.numerator}/{time_base.denominator}",
                  "ephemeral_public_key": b64(eph_pub), "created": iso(now_utc()), "compression": "zlib"}
        head = canonical(header)
        key = AESGCM.generate_key(bit_length=256)
        kek = _kek(eph.exchange(X25519PublicKey.from_public_bytes(config.sealing_public_key)), eph_pub,
                   config.sealing_public_key)
        nonce = os.urandom(12)
        wrapped = nonce + AESGCM(kek).encrypt(nonce, key, head)
        self._aes = AESGCM(key)
        self._digest = hashlib.sha256(head).digest()
        self.seq = 0
        self.frames = 0
        self.frames_sealed = 0
        self.regions = 0
        self.sealed_bytes = 0
        self.first_pts: int | None = None
        self.last_pts: int | None = None
        try:
            self._f: BinaryIO = self.tmp.open("wb")
            self._f.write(MAGIC + _U32.pack(len(head)) + head + _U32.pack(len(wrapped)) + wrapped)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the sealed sidecar: {exc.strerror or exc}") from exc

    def _record(self, kind: int, pts: int, frame: int, region: int, rect: tuple[int, ...], data: bytes) -> None:
        self.seq += 1
        head = _HEAD.pack(kind, self.seq, pts, frame, region, *rect)
        ct = self._aes.encrypt(_nonce(self.seq), data, _aad(self._digest, head))
        try:
            self._f.write(_U32.pack(len(head) + len(ct)) + head + ct)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the sealed sidecar: {exc.strerror or exc}") from exc

    def add(self, pts: int, regions: Regions | None) -> None:
        """Seal one written frame's regions (None or empty: nothing under dynamic masks)."""
        frame = self.frames
        self.frames += 1
        self.first_pts = pts if self.first_pts is None else self.first_pts
        self.last_pts = pts
        if regions is None or not len(regions.pixels):
            return
        self.frames_sealed += 1
        for i, (rect, data) in enumerate(zip(regions.rects.tolist(), regions.pixels)):
            packed = zlib.compress(data, 1)
            self._record(KIND_REGION, pts, frame, i, tuple(rect), packed)
            self.regions += 1
            self.sealed_bytes += len(packed)

    def close(self) -> Path:
        """Seal the counts, flush, and move the sidecar to its final name."""
        summary = {"records": self.seq, "frames": self.frames, "frames_sealed": self.frames_sealed,
                   "first_pts": self.first_pts, "last_pts": self.last_pts}
        self._record(KIND_END, self.last_pts or 0, self.frames, 0, (0, 0, 0, 0), canonical(summary))
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot finish the sealed sidecar: {exc.strerror or exc}") from exc
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- reader
@dataclass(frozen=True)
class SealedRegion:
    frame: int
    pts: int
    rect: tuple[int, int, int, int]
    pixels: bytes


class SidecarReader:
    """Opens a sidecar with the vault's sealing private key; every failure is a `TamperError`."""

    def __init__(self, path: Path, config: VaultConfig, sealing: X25519PrivateKey) -> None:
        self.path = path
        try:
            with path.open("rb") as f:  # mapped, not read: a sidecar may hold minutes of regions
                self.data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
        except OSError as exc:
            raise TamperError(f"{path}: sealed sidecar missing or unreadable ({exc.strerror or exc})") from exc
        self.name = path.name
        d = self.data
        if d[: len(MAGIC)] != MAGIC:
            raise TamperError(f"{self.name}: not a sealed sidecar (bad magic bytes)")
        pos = len(MAGIC)
        head, pos = self._chunk(pos, "header")
        head = bytes(head)
        try:
            self.header: dict[str, Any] = json.loads(head)
            eph = unb64(self.header["ephemeral_public_key"], "ephemeral key")
            self.layout = str(self.header["layout"])
            self.width, self.height = int(self.header["width"]), int(self.header["height"])
        except (ValueError, KeyError, TypeError, VaultError) as exc:
            raise TamperError(f"{self.name}: header is damaged (altered)") from exc
        self.segment = str(self.header.get("segment", self.name))
        wrapped, pos = self._chunk(pos, "wrapped key")
        if self.header.get("vault_id") != config.vault_id:
            raise TamperError(f"{self.name}: sealed for another vault ({self.header.get('vault_id')})")
        try:
            kek = _kek(sealing.exchange(X25519PublicKey.from_public_bytes(eph)), eph, config.sealing_public_key)
            key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], head)
        except (InvalidTag, ValueError) as exc:
            raise TamperError(f"segment {self.segment}: sidecar header or data key fails authentication (altered)") from exc
        if self.header.get("format") != VERSION or self.layout not in ("bgr24", "yuv420p"):
            raise TamperError(f"{self.name}: unsupported sidecar format {self.header.get('format')!r}/{self.layout!r}")
        self._aes = AESGCM(key)
        self._digest = hashlib.sha256(head).digest()
        self._start = pos
        self.index: dict[int, list[int]] = {}
        self.summary: dict[str, Any] = {}

    def _chunk(self, pos: int, what: str) -> tuple[bytes, int]:
        if pos + 4 > len(self.data):
            raise TamperError(f"{self.name}: truncated in the {what}")
        (n,) = _U32.unpack_from(self.data, pos)
        if pos + 4 + n > len(self.data):
            raise TamperError(f"{self.name}: truncated in the {what}")
        return self.data[pos + 4 : pos + 4 + n], pos + 4 + n

    def _records(self) -> Iterator[tuple[int, tuple[int, ...], bytes]]:
        """(offset, head fields, plaintext) of every record, authenticated, in order."""
        pos, seq, frame = self._start, 0, 0
        while pos < len(self.data):
            where = f"segment {self.segment}: after frame {frame} (record {seq})"
            if pos + 4 > len(self.data):
                raise TamperError(f"{where}: trailing bytes (altered)")
            offset = pos
            rec, pos = self._chunk(pos, f"record {seq + 1}")
            if len(rec) < _HEAD.size + 16:
                raise TamperError(f"{where}: record too short (altered)")
            head = rec[: _HEAD.size]
            fields = _HEAD.unpack(head)
            kind, rseq, pts, rframe = fields[:4]
            if rseq != seq + 1:
                raise TamperError(f"{where}: record {rseq} found where record {seq + 1} belongs "
                                  "(records removed, reordered or swapped)")
            try:
                plain = self._aes.decrypt(_nonce(rseq), rec[_HEAD.size :], _aad(self._digest, head))
            except InvalidTag as exc:
                raise TamperError(f"segment {self.segment}: frame {rframe} (pts {pts}), region {fields[4]}: fails "
                                  "authentication (altered, moved from another frame or file)") from exc
            seq, frame = rseq, rframe
            if kind == KIND_END:
                yield offset, fields, plain
                if pos != len(self.data):
                    raise TamperError(f"segment {self.segment}: bytes after the end record (appended)")
                return
            yield offset, fields, self._unpack(fields, plain)
        raise TamperError(f"segment {self.segment}: truncated after frame {frame} (record {seq}): the end record is missing")

    def _unpack(self, fields: tuple[int, ...], packed: bytes) -> bytes:
        """The region's pixel bytes from an authenticated record (decompressed, size-checked)."""
        size = region_size((fields[5], fields[6], fields[7], fields[8]), self.layout)
        try:
            plain = zlib.decompressobj().decompress(packed, size + 1) if fields[0] == KIND_REGION else b""  # bounded
        except zlib.error:
            plain = b""
        if len(plain) != size or size == 0:
            raise TamperError(f"segment {self.segment}: frame {fields[3]}: record {fields[1]} is malformed")
        return plain

    def authenticate(self) -> dict[str, Any]:
        """Check every record; index them by frame (0-based, in the segment); return the end record's counts."""
        index: dict[int, list[int]] = {}
        summary: dict[str, Any] = {}
        count = 0
        for offset, fields, plain in self._records():
            if fields[0] == KIND_END:
                summary = json.loads(plain)
                if summary.get("records") != count:
                    raise TamperError(f"segment {self.segment}: the end record counts {summary.get('records')} "
                                      f"records, the sidecar holds {count}")
            else:
                count += 1
                index.setdefault(int(fields[3]), []).append(offset)
        self.index, self.summary = index, summary
        return summary

    def regions(self, frame: int) -> list[SealedRegion]:
        """The authenticated regions sealed for frame `frame` of the segment (after `authenticate`).

        Frames are matched by their position: a container may shift every PTS by a constant (an
        edit list), so the caller checks `pts - first_pts` instead of the PTS itself."""
        out = []
        for offset in self.index.get(frame, []):
            rec, _ = self._chunk(offset, "record")
            head = rec[: _HEAD.size]
            f = _HEAD.unpack(head)
            try:
                plain = self._aes.decrypt(_nonce(f[1]), rec[_HEAD.size :], _aad(self._digest, head))
            except InvalidTag as exc:
                raise TamperError(f"segment {self.segment}: frame {f[3]} (pts {f[2]}) fails authentication") from exc
            out.append(SealedRegion(int(f[3]), int(f[2]), (int(f[5]), int(f[6]), int(f[7]), int(f[8])),
                                    self._unpack(f, plain)))
        return out
