"""`masking serve` config: a set of cameras, each with a source, a sink, zones and detection.

```yaml
stats_interval_s: 10          # per-camera counters logged this often (and at exit)
cameras:
  - name: lobby               # unique; used in logs and counters
    source: rtsp://10.0.0.5/stream1     # file, folder, rtsp://, rtsps://, http(s)://
    transport: tcp            # RTSP transport (tcp | udp)
    sink:                     # one output; or `outputs:`, a list of several (below)
      format: h264            # h264 | jpeg-dir
      path: /srv/masked/lobby.mp4
      segment_seconds: 300    # h264 only: one file per 5 minutes of source time
    zones: /etc/masking/zones.yaml
    camera: lobby-cam         # camera id in the zones file (optional when it holds one camera)
    vault: /srv/vault         # optional: seal the pixels under dynamic masks (`masking vault init`)
    detection:                # optional: overrides the zones file's `detect` section
      detect: faces,bodies
      every: 1
      fail_policy: full
      max_latency_ms: 1000
  - name: gate
    source: /srv/footage/gate.mp4
    pace: realtime            # a file replayed at its own frame rate (into a recorder, for tests)
    keyframe_seconds: 2       # live outputs: a recorder can start decoding within this
    outputs:                  # all fed by the same masked frames
      - {format: h264, path: /srv/masked/gate.mp4, segment_seconds: 300}
      - {format: http}        # http://HOST:PORT/cameras/gate/stream.ts and .../index.m3u8
      - {format: rtsp-publish, url: rtsp://127.0.0.1:8554/gate}   # ANNOUNCE/RECORD over TCP
    zones: /etc/masking/zones.yaml
http:                         # where every `http` output is served (default 127.0.0.1:8090)
  host: 127.0.0.1             # another address warns and requires the token
  port: 8090
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from masking.config.validation import Identifier, format_validation_error, repeated
from masking.config.validation import StrictModel as _Strict
from masking.config.yamlio import load_yaml
from masking.config.zones import Camera, DetectConfig, load_zones
from masking.errors import ConfigError
from masking.video.encoding import DEFAULT_PRESET, ENCODER_PRESETS


class SinkSpec(_Strict):
    """Where one camera's masked frames go."""

    format: Literal["h264", "jpeg-dir"] = Field("h264", description="h264: a video file (or segments); jpeg-dir: a folder of JPEGs.")
    path: Path = Field(description="Output file (h264) or folder (jpeg-dir).")
    segment_seconds: float | None = Field(
        None, gt=0, le=86400,
        description="h264 only: cut a new file every this many seconds of source time (NAME_00000.mp4, ...).",
    )
    crf: int = Field(20, ge=0, le=51, description="x264 quality (lower is better); 20 keeps masks crisp.")
    preset: str = Field(
        DEFAULT_PRESET,
        description=f"Encoder preset, one of: {', '.join(ENCODER_PRESETS)}. ingest (default): x264 superfast with "
        "veryfast's rate control, veryfast's file size for 60% of its CPU (docs/ingest.md).",
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in ENCODER_PRESETS:
            raise ValueError(f"unknown encoder preset {v!r}; choose from: {', '.join(ENCODER_PRESETS)}")
        return v

    @model_validator(mode="after")
    def _segments_h264(self) -> SinkSpec:
        if self.segment_seconds is not None and self.format != "h264":
            raise ValueError("segment_seconds applies to format h264 only")
        return self


class HttpOutputSpec(_Strict):
    """The camera's masked stream served live over HTTP (MPEG-TS and HLS) at the config's `http` address."""

    format: Literal["http"] = Field(description="http: live MPEG-TS at /cameras/NAME/stream.ts, HLS at .../index.m3u8.")


class RtspPublishSpec(_Strict):
    """The camera's masked stream pushed to an RTSP server (ANNOUNCE/RECORD over TCP)."""

    format: Literal["rtsp-publish"] = Field(description="rtsp-publish: push to an existing RTSP server.")
    url: str = Field(pattern=r"^rtsps?://[^\s/]+/\S*$", description="rtsp://HOST:PORT/PATH of the server (MediaMTX, go2rtc, ...).")


class FileOutputSpec(SinkSpec):
    """A recording output in an `outputs:` list (format required there)."""

    format: Literal["h264", "jpeg-dir"] = Field(description="h264: a video file (or segments); jpeg-dir: a folder of JPEGs.")


OutputSpec = Annotated[FileOutputSpec | HttpOutputSpec | RtspPublishSpec, Field(discriminator="format")]


class HttpSpec(_Strict):
    """Where the `http` outputs are served."""

    host: str = Field("127.0.0.1", min_length=1, description="Bind address; anything but loopback warns and needs the token.")
    port: int = Field(8090, ge=1, le=65535, description="TCP port.")
    token: str | None = Field(None, min_length=16, description="Access token; generated and logged when needed and not given.")


class DetectionSpec(_Strict):
    """Dynamic masking for one camera; overrides the zones file's `detect` section."""

    detect: str | None = Field(None, description="Preset list, e.g. `faces` or `faces,bodies`; null = the zones file's.")
    every: int | None = Field(None, ge=1, le=30, description="Detect on every k-th frame; masks are held and grown between.")
    fail_policy: Literal["full", "zones"] | None = Field(None, description="full (default) or zones.")
    max_latency_ms: float | None = Field(None, gt=0, le=60000, description="Deadline for a detection result.")


class ServeCamera(_Strict):
    """One camera of `masking serve`."""

    name: Identifier = Field(description="Unique name for logs and counters (letters and digits of any script, `_.:@-`).")
    source: str = Field(min_length=1, description="File, folder of segments, or rtsp:// rtsps:// http(s):// URL.")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport; TCP survives lossy networks.")
    reconnect_max_s: float = Field(10.0, gt=0, le=600, description="Longest wait between reconnection attempts.")
    sink: SinkSpec | None = Field(None, description="The one-output form; or `outputs`.")
    outputs: list[OutputSpec] | None = Field(None, min_length=1, max_length=16,
                                            description="Several outputs, all fed by the same masked frames.")
    pace: Literal["none", "realtime"] = Field("none", description="realtime: read a file source at its own frame rate.")
    keyframe_seconds: float = Field(2.0, gt=0, le=60, description="Keyframe interval of the live outputs' encoder.")
    zones: Path = Field(description="Zones YAML file (relative paths are relative to this config).")
    camera: str | None = Field(None, description="Camera id in the zones file; optional when it holds one camera.")
    detection: DetectionSpec | None = Field(None, description="Overrides the zones file's detection.")
    vault: Path | None = Field(None, description="Vault folder (`masking vault init`): seal the original pixels under "
                               "dynamic masks into a sidecar per segment and register each segment (h264 only).")

    @model_validator(mode="after")
    def _vault_h264(self) -> ServeCamera:
        formats = [o.format for o in ([self.sink] if self.sink else []) + list(self.outputs or [])]
        if self.vault is not None and "h264" not in formats:
            raise ValueError("vault needs an h264 output (the sealed sidecar sits next to each segment)")
        return self

    @model_validator(mode="after")
    def _one_output_form(self) -> ServeCamera:
        if (self.sink is None) == (self.outputs is None):
            raise ValueError("give exactly one of `sink` (one output) or `outputs` (a list)")
        kinds = [o.format for o in self.outputs or []]
        if kinds.count("http") > 1:
            raise ValueError("at most one `http` output per camera")
        return self

    @property
    def all_outputs(self) -> list[FileOutputSpec | SinkSpec | HttpOutputSpec | RtspPublishSpec]:
        """`outputs`, or the `sink` as a one-entry list."""
        if self.outputs is not None:
            return list(self.outputs)
        assert self.sink is not None
        return [self.sink]

    @property
    def file_outputs(self) -> list[SinkSpec]:
        """The outputs written to files or folders (h264, jpeg-dir), in order."""
        return [o for o in self.all_outputs if isinstance(o, SinkSpec)]

    @property
    def serves_http(self) -> bool:
        """Whether the camera has an `http` output."""
        return any(isinstance(o, HttpOutputSpec) for o in self.all_outputs)


class ServeConfig(_Strict):
    """A `masking serve` config file."""

    cameras: list[ServeCamera] = Field(min_length=1, max_length=256)
    stats_interval_s: float = Field(10.0, gt=0, le=3600, description="Counters are logged this often.")
    http: HttpSpec = Field(default_factory=HttpSpec, description="Where the `http` outputs are served.")
    queue_size: int = Field(8, ge=1, le=256, description="Frames buffered between stages per camera.")
    detector_threads: int = Field(
        1, ge=1, le=64,
        description="ONNX Runtime threads per detector group. 1: decode, detection and encoding already run "
        "in parallel; more ORT threads steal CPU from them (measured: 22 vs 31 ms CPU/frame on 2 cores).",
    )
    detector_workers: int | None = Field(
        None, ge=1, le=64,
        description="Detection threads per detector set; cameras are dealt to them round-robin. Default: one "
        "per core (one thread caps all cameras at what one core detects: 3 cameras of 720p with faces reach "
        "20 fps each on 2 cores with one, 25 with two).",
    )

    @model_validator(mode="after")
    def _unique(self) -> ServeConfig:
        dups = repeated(c.name for c in self.cameras)
        if dups:
            raise ValueError(f"camera names must be unique; repeated: {dups}")
        dup_out = repeated(os.path.realpath(o.path) for c in self.cameras
                           for o in c.file_outputs)  # `out/a.mp4` == `./x/../out/a.mp4`
        if dup_out:
            raise ValueError(f"two cameras write to the same sink path: {dup_out}")
        return self


def load_serve_config(path: str | Path) -> ServeConfig:
    """Load and validate a serve config; relative zone/sink/source paths resolve against its folder."""
    p = Path(path)
    raw = load_yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping with a `cameras` list at the top level")
    try:
        cfg = ServeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, str(p)).replace("camera #", "camera entry #")) from exc
    base = p.resolve().parent
    cams = []
    for c in cfg.cameras:
        src = c.source if re.match(r"^[a-z][a-z0-9+.-]*://", c.source) else str(base / c.source)
        update: dict[str, Any] = {"source": src, "zones": base / c.zones,
                                  "vault": base / c.vault if c.vault is not None else None}
        if c.sink is not None:
            update["sink"] = c.sink.model_copy(update={"path": base / c.sink.path})
        if c.outputs is not None:
            update["outputs"] = [o.model_copy(update={"path": base / o.path}) if isinstance(o, SinkSpec) else o
                                 for o in c.outputs]
        cams.append(c.model_copy(update=update))
    by_path: dict[str, str] = {}
    for c in cams:  # relative to the config's folder, symlinks and `..` resolved
        for o in c.file_outputs:
            real = os.path.realpath(o.path)
            if real in by_path:
                raise ConfigError(f"{p}: cameras {by_path[real]!r} and {c.name!r} write to the same sink path {real}")
            by_path[real] = c.name
    return cfg.model_copy(update={"cameras": cams})


def resolve_camera(spec: ServeCamera, where: str) -> Camera:
    """The zones-file camera of a serve entry, with the entry's detection overrides applied."""
    zones = load_zones(spec.zones)
    cam = zones.camera(spec.camera, source=f"{where}: camera {spec.name!r}: {spec.zones}")
    return apply_detection(cam, spec.detection, f"{where}: camera {spec.name!r}")


def apply_detection(cam: Camera, det: DetectionSpec | None, where: str) -> Camera:
    """`cam` with detection overrides: a preset replaces the detector list; other fields update."""
    if det is None:
        return cam
    from masking.detect.dynamic import detect_config_from_preset

    base: DetectConfig | None = cam.detect
    opts: dict[str, Any] = {k: v for k, v in (("every", det.every), ("fail_policy", det.fail_policy),
                                              ("max_latency_ms", det.max_latency_ms)) if v is not None}
    if det.detect is not None:
        keep = {k: getattr(base, k) for k in ("every", "fail_policy", "max_latency_ms")} if base else {}
        keep.update(opts)
        cfg = detect_config_from_preset(det.detect, **keep)
    elif base is not None:
        try:
            cfg = DetectConfig.model_validate({**base.model_dump(), **opts})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, None, where, "detection options")) from exc
    else:
        if opts:
            raise ConfigError(f"{where}: detection options given but no detector (set `detect: faces`)")
        return cam
    return cam.model_copy(update={"detect": cfg})
