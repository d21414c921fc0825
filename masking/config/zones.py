"""Camera zone configs: cameras, zones in normalised 0-1 coordinates, mask styles, detection.

One YAML file describes one or more cameras. Validation is pydantic (`extra="forbid"`) for the
shape and shapely for the geometry; every error names the file, the camera, the zone and what was
expected. Config models hold configuration only, never runtime state.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator
from shapely.geometry import MultiPoint, Polygon
from shapely.validation import explain_validity

from masking import limits
from masking.config.validation import (
    Identifier,
    StrictModel,
    format_validation_error,
    identifier_ok,
    repeated,
)
from masking.config.yamlio import load_yaml
from masking.errors import ConfigError

Point = tuple[float, float]


# --------------------------------------------------------------------------- styles
class FillStyle(StrictModel):
    """Solid fill: irreversible, the default."""

    mode: Literal["fill"] = "fill"
    color: tuple[int, int, int] = Field(
        (0, 0, 0), description="Fill colour as [R, G, B], each 0-255. Default black."
    )

    @field_validator("color")
    @classmethod
    def _rgb_range(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(c < 0 or c > 255 for c in v):
            raise ValueError(f"colour components must be 0-255, got {list(v)}")
        return v

    @property
    def bgr(self) -> tuple[int, int, int]:
        """The colour in the frame's BGR channel order."""
        r, g, b = self.color
        return (b, g, r)


class PixelateStyle(StrictModel):
    """Mosaic: each block x block cell replaced by its mean colour."""

    mode: Literal["pixelate"]
    block: int = Field(16, ge=4, le=256, description="Cell size in pixels (4-256). Larger hides more.")


class BlurStyle(StrictModel):
    """Box/Gaussian blur of the region."""

    mode: Literal["blur"]
    strength: int = Field(
        31, ge=9, le=255,
        description="Blur kernel size in pixels (9-255; made odd). Below 9 faces stay recognisable.",
    )


MaskStyle = Annotated[Union[FillStyle, PixelateStyle, BlurStyle], Field(discriminator="mode")]


# --------------------------------------------------------------------------- geometry
def _check_ring(name: str, ring: list[Point]) -> None:
    if len(ring) < 3:
        raise ValueError(f"{name} needs at least 3 points, got {len(ring)}")
    if len(ring) > limits.POINTS_PER_RING:
        raise ValueError(f"{name} has {len(ring)} points; at most {limits.POINTS_PER_RING} are allowed "
                         "(simplify the outline)")
    for i, (x, y) in enumerate(ring):
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"{name} point {i} is not a finite number: [{x}, {y}]")
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"{name} point {i} [{x}, {y}] is outside the frame "
                "(coordinates are normalised: 0 <= x, y <= 1)"
            )


class PolygonSpec(StrictModel):
    """A polygon in normalised coordinates: an exterior ring and optional holes."""

    exterior: list[Point] = Field(description="Outer ring, [[x, y], ...], 0-1 of width/height.")
    holes: list[list[Point]] = Field(default_factory=list, description="Inner rings (unmasked islands).")

    @model_validator(mode="after")
    def _valid_geometry(self) -> PolygonSpec:
        _check_ring("polygon exterior", self.exterior)
        if len(self.holes) > limits.HOLES_PER_ZONE:
            raise ValueError(f"polygon has {len(self.holes)} holes; at most {limits.HOLES_PER_ZONE} are allowed")
        for k, hole in enumerate(self.holes):
            _check_ring(f"polygon hole {k}", hole)
        if MultiPoint(self.exterior).convex_hull.area <= 0.0:
            raise ValueError(
                "polygon has zero area: its points lie on one line (e.g. all on the frame border); "
                "a zone needs an outline that encloses part of the view"
            )
        poly = self.shapely()
        if not poly.is_valid:
            raise ValueError(f"polygon is not valid: {explain_validity(poly)} (edges must not cross or touch; "
                             "holes must lie inside the exterior)")
        if poly.area <= 0.0:
            raise ValueError("polygon has zero area (its holes cover all of it)")
        return self

    def shapely(self) -> Polygon:
        """The polygon as a shapely geometry in normalised coordinates."""
        return Polygon(self.exterior, self.holes)

    def to_pixels(self, width: int, height: int) -> tuple[list[list[Point]], list[list[Point]]]:
        """Exterior and holes scaled to a frame of `width` x `height` pixels."""
        sx, sy = float(width), float(height)
        ext = [[(x * sx, y * sy) for x, y in self.exterior]]
        holes = [[(x * sx, y * sy) for x, y in h] for h in self.holes]
        return ext, holes


def _coerce_polygon(v: Any) -> Any:
    """Accept `[[x, y], ...]` (no holes) or `{exterior: [...], holes: [[...], ...]}`."""
    if isinstance(v, list):
        return {"exterior": v}
    return v


# --------------------------------------------------------------------------- zones
class ZoneKind(str, Enum):
    """What a zone means."""

    privacy_mask = "privacy_mask"  # always masked
    prohibited_view = "prohibited_view"  # an opening onto an Art. 7 area: always masked, reported by audits
    watch = "watch"  # only evaluated, never masked (masked by the `zones` fail policy)


class Zone(StrictModel):
    """One named region of a camera's view."""

    id: Identifier = Field(description="Unique within the camera; letters and digits of any script, `_.:@-`.")
    kind: ZoneKind = Field(description="privacy_mask | prohibited_view | watch")
    polygon: Annotated[PolygonSpec, Field(description="Normalised polygon; holes allowed.")]
    style: MaskStyle = Field(default_factory=FillStyle, description="How the zone is masked.")

    @field_validator("polygon", mode="before")
    @classmethod
    def _poly(cls, v: Any) -> Any:
        return _coerce_polygon(v)

    @property
    def masked(self) -> bool:
        """Whether the zone is masked in normal operation."""
        return self.kind in (ZoneKind.privacy_mask, ZoneKind.prohibited_view)


# --------------------------------------------------------------------------- detection
class DetectSpec(StrictModel):
    """One detector whose detections are masked dynamically."""

    model: str = Field(description="Model name from models/registry.yaml, e.g. yunet, nudenet-320n.")
    classes: list[str] | None = Field(
        None, description="Class names to mask; default: the registry's `mask_classes` for the model."
    )
    threshold: float = Field(
        0.3, ge=0.01, le=0.99,
        description="Minimum score. Low by default: a false mask costs less than a missed face.",
    )
    where: Literal["frame"] | list[str] = Field(
        "frame", description="`frame` (whole view) or a list of zone ids to detect inside only."
    )
    margin: float = Field(
        1.3, ge=1.0, le=3.0, description="Box grown by this factor around its centre (deface uses 1.3)."
    )
    shape: Literal["ellipse", "box"] = Field("box", description="Mask shape drawn for each detection.")
    max_side: int = Field(
        640, ge=64, le=4096,
        description="Detect on a copy downscaled so its long side is at most this; boxes map back. A lower "
        "value is faster and misses small faces (a privacy trade-off); `native` looks at full resolution anyway.",
    )
    native: bool = Field(
        False,
        description="When the frame is larger than `max_side`, detect at source resolution instead, "
        "re-examining only the parts of the picture that changed: finds faces too small for the shrunk copy. "
        "On in the `faces` preset; turning it off is faster and trades privacy for speed.",
    )
    heads: bool = Field(
        False,
        description="Mask the head region of each (person) box, as an ellipse, instead of the whole box: "
        "a person seen from behind is still masked where a face detector sees no face.",
    )


class DetectConfig(StrictModel):
    """Dynamic masking for a camera: detectors, cadence, and what to do when they fail."""

    detectors: list[DetectSpec] = Field(default_factory=list)
    every: int = Field(
        1, ge=1, le=30,
        description="Run detection on every k-th frame; frames in between reuse the last result, grown.",
    )
    fail_policy: Literal["full", "zones"] = Field(
        "full",
        description="When detection fails or is late: `full` blacks the whole frame; `zones` masks "
        "every zone (watch included) plus the last detections grown. Default leans to privacy.",
    )
    max_latency_ms: float = Field(
        1000.0, gt=0, le=60000, description="Deadline for a detection result before the fail policy applies."
    )
    track_frames: int = Field(
        12, ge=0, le=300,
        description="Keep masking a face/person track this many frames after its last detection, moved "
        "and grown with its velocity (0: no tracker). Only ever adds masks.",
    )


class Camera(StrictModel):
    """One camera: its id, where it is, its zones and dynamic detection."""

    camera_id: Identifier = Field(description="Letters and digits of any script and `_.:@-`, 1-128 characters.")
    site: str | None = Field(None, max_length=500, description="Free-text description of the site.")
    zones: list[Zone] = Field(default_factory=list, max_length=limits.ZONES_PER_CAMERA)
    style: MaskStyle = Field(
        default_factory=FillStyle, description="Style of dynamic (detection) masks and policy masks."
    )
    detect: DetectConfig | None = Field(None, description="Dynamic masks; none if omitted.")

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> Camera:
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(f"zone id {z.id!r} appears more than once (zone ids must be unique)")
            seen.add(z.id)
        if self.detect:
            for spec in self.detect.detectors:
                if isinstance(spec.where, list):
                    unknown = [w for w in spec.where if w not in seen]
                    if unknown:
                        raise ValueError(f"detect.where names unknown zone ids {unknown}")
        return self

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id (KeyError if none)."""
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)


class ZonesFile(StrictModel):
    """A zones YAML file: one or more cameras."""

    cameras: list[Camera] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> ZonesFile:
        dups = repeated(c.camera_id for c in self.cameras)
        if dups:
            raise ValueError(f"camera ids must be unique; repeated: {dups}")
        points = sum(len(z.polygon.exterior) + sum(map(len, z.polygon.holes)) for c in self.cameras for z in c.zones)
        if points > limits.POINTS_PER_FILE:
            raise ValueError(f"the zones hold {points} points in all; at most {limits.POINTS_PER_FILE} are allowed")
        return self

    def camera(self, camera_id: str | None = None, source: str = "zones file") -> Camera:
        """Pick a camera: by id, or the only one when the file holds one."""
        if camera_id is None:
            if len(self.cameras) == 1:
                return self.cameras[0]
            ids = ", ".join(c.camera_id for c in self.cameras)
            raise ConfigError(f"{source}: holds {len(self.cameras)} cameras ({ids}); choose one with --camera")
        for c in self.cameras:
            if c.camera_id == camera_id:
                return c
        ids = ", ".join(c.camera_id for c in self.cameras)
        raise ConfigError(f"{source}: no camera {camera_id!r} (cameras: {ids})")


# --------------------------------------------------------------------------- loading
def parse_zones(raw: Any, source: str = "<zones>") -> ZonesFile:
    """Validate already-parsed YAML data as a zones file."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with a `cameras` list at the top level")
    for k, cam in enumerate(raw.get("cameras") or [] if isinstance(raw.get("cameras"), list) else []):
        zones = cam.get("zones") if isinstance(cam, dict) else None
        if isinstance(zones, list) and len(zones) > limits.ZONES_PER_CAMERA:  # before validating them all
            raise ConfigError(f"{source}: camera #{k + 1} has {len(zones)} zones; at most "
                              f"{limits.ZONES_PER_CAMERA} are allowed per camera (see docs/errors.md, Limits)")
    try:
        return ZonesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, source)) from exc


def load_zones(path: str | Path) -> ZonesFile:
    """Load and validate a zones YAML file (duplicate keys are an error)."""
    return parse_zones(load_yaml(path), source=str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the zones file format, generated from the models."""
    return ZonesFile.model_json_schema()


zone_id_ok = identifier_ok
