"""Detectors: the `Detector` protocol, `Detections`, and ONNX adapters per model family."""

from masking.detect.base import Detector, FakeDetector
from masking.detect.detections import Detections

__all__ = ["Detections", "Detector", "FakeDetector"]
