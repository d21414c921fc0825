"""Config models (pydantic, `extra="forbid"`) and the strict YAML loader."""

from masking.config.yamlio import load_yaml
from masking.config.zones import (
    Camera,
    DetectConfig,
    MaskStyle,
    PolygonSpec,
    Zone,
    ZoneKind,
    ZonesFile,
    load_zones,
)

__all__ = [
    "Camera",
    "DetectConfig",
    "MaskStyle",
    "PolygonSpec",
    "Zone",
    "ZoneKind",
    "ZonesFile",
    "load_yaml",
    "load_zones",
]
