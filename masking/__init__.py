"""masking: keep surveillance cameras out of places where people are entitled to privacy.

The public API is small; everything else is private to its module.
"""

from masking.config import Camera, Zone, ZonesFile, load_zones
from masking.detect.base import Detector, FakeDetector
from masking.detect.detections import Detections
from masking.errors import (
    ConfigError,
    DetectorError,
    InputError,
    MaskingError,
    ModelError,
    OutputError,
)

__version__ = "0.1.0"

__all__ = [
    "Camera",
    "ConfigError",
    "Detections",
    "Detector",
    "DetectorError",
    "FakeDetector",
    "InputError",
    "MaskingError",
    "ModelError",
    "OutputError",
    "Zone",
    "ZonesFile",
    "__version__",
    "load_zones",
]
