"""Video and image input/output (PyAV, OpenCV)."""
