"""The committed model registry is valid and matches the real model files; bad registries are refused."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import onnxruntime as ort
import pytest

from masking.errors import ConfigError, ModelError
from masking.models.cache import check_installed, package_file
from masking.models.registry import COCO80, ModelEntry, default_registry_path, load_registry

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "masking" / "models" / "registry.yaml"
ENTRIES = load_registry(COMMITTED).models


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry_yaml(name: str = "m", sha: str = "a" * 64, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    family: yolox\n    task: objects\n    file: {name}.onnx\n"
        f"    sha256: {sha}\n    size: 10\n    license: MIT\n    classes: coco80\n"
        f"    urls: [http://127.0.0.1:9/{name}.onnx]\n{extra}"
    )


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "registry.yaml"
    p.write_text("schema_version: 1\nmodels:\n" + body, encoding="utf-8")
    return p


def test_committed_registry_loads_with_expected_models() -> None:
    reg = load_registry(COMMITTED)
    licences = {m.name: m.license for m in reg.models}
    expected = {
        "yolox-nano": "Apache-2.0",
        "yolov8n-int8": "AGPL-3.0",
        "yolo11n-int8": "AGPL-3.0",
        "yunet": "MIT",
        "ultraface-rfb320": "MIT",
        "centerface": "MIT",
        "nudenet-320n": "AGPL-3.0",
    }
    assert {n: licences.get(n) for n in expected} == expected
    by_file: dict[str, set[tuple[str, int]]] = {}
    for m in reg.models:
        by_file.setdefault(m.file, set()).add((m.sha256, m.size))
    shared = {f: v for f, v in by_file.items() if len(v) > 1}
    assert not shared, f"models sharing a cache file name must be the same file: {shared}"
    with pytest.raises(ModelError, match="unknown model 'nope'.*yolox-nano"):
        reg.get("nope")


def test_default_registry_is_the_committed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASKING_REGISTRY", raising=False)
    assert default_registry_path() == COMMITTED


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.mirror_path], ids=lambda e: e.name)
def test_mirror_file_matches_registry(entry: ModelEntry, shared_dir: Path) -> None:
    path = shared_dir / "models" / str(entry.mirror_path)
    assert path.is_file(), f"{entry.name}: mirror file {path} missing"
    assert path.stat().st_size == entry.size
    assert _sha256(path) == entry.sha256


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.package], ids=lambda e: e.name)
def test_package_file_matches_registry(entry: ModelEntry) -> None:
    from importlib.metadata import version

    assert entry.package is not None
    path = package_file(entry)
    assert path is not None, f"{entry.name}: package {entry.package.name} not installed (make install)"
    assert version(entry.package.name) == entry.package.version
    assert path.stat().st_size == entry.size
    assert _sha256(path) == entry.sha256


def _class_names(entry: ModelEntry, session: ort.InferenceSession) -> tuple[str, ...]:
    static = entry.static_class_names
    if static is not None:
        return static
    names = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    return tuple(names[i] for i in sorted(names))


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_installed_model_is_onnx_matching_its_entry(entry: ModelEntry) -> None:
    """Each installed file loads in onnxruntime; input size, mask classes and evidence classes exist."""
    check = check_installed(entry, full=True)
    assert check.state == "ok", f"{entry.name}: {check.state} {check.reason} (run make models)"
    assert check.path is not None
    if entry.family.startswith("litert-"):  # the TFLite scene models: LiteRT loads them
        from ai_edge_litert.interpreter import Interpreter

        shape = [int(v) for v in Interpreter(model_path=str(check.path)).get_input_details()[0]["shape"]]
        assert entry.input_size is not None and shape[1:3] == [entry.input_size[1], entry.input_size[0]]
        assert set(entry.evidence) <= set(entry.static_class_names or ()), f"{entry.name}: evidence classes"
        return
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(check.path), opts, providers=["CPUExecutionProvider"])
    names = _class_names(entry, session)
    if entry.classes == "coco80" or (entry.classes == "metadata" and entry.task == "objects"):
        assert names == COCO80
    assert set(entry.mask_classes) <= set(names), f"{entry.name}: mask_classes not among {names}"
    assert set(entry.evidence) <= set(names), f"{entry.name}: evidence classes not among {names}"
    if entry.input_size is not None:
        width, height = entry.input_size
        assert session.get_inputs()[0].shape[2:] == [height, width]


def test_registry_override_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _entry_yaml("custom-model"))
    monkeypatch.setenv("MASKING_REGISTRY", str(path))
    assert default_registry_path() == path
    assert [m.name for m in load_registry().models] == ["custom-model"]
    assert load_registry().get("custom-model").static_class_names == COCO80


def test_duplicate_model_names_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry_yaml("twin") + _entry_yaml("twin"))
    with pytest.raises(ConfigError, match=r"unique.*twin"):
        load_registry(path)


def test_duplicate_yaml_key_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry_yaml("m", extra="    size: 11\n"))
    with pytest.raises(ConfigError, match="duplicate key 'size'"):
        load_registry(path)


def test_extra_key_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry_yaml("m", extra="    sha1: abc\n"))
    with pytest.raises(ConfigError, match=r"model 'm', field 'sha1': Extra inputs are not permitted"):
        load_registry(path)


@pytest.mark.parametrize("sha", ["a" * 63, "A" * 64, "g" * 64, "'" + "a" * 65 + "'"])
def test_bad_sha256_rejected(tmp_path: Path, sha: str) -> None:
    path = _write(tmp_path, _entry_yaml("m", sha=sha))
    with pytest.raises(ConfigError, match=r"model 'm', field 'sha256'"):
        load_registry(path)


def test_entry_without_any_source_rejected(tmp_path: Path) -> None:
    body = _entry_yaml("m").replace("    urls: [http://127.0.0.1:9/m.onnx]\n", "")
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match="needs `urls`, `mirror_path` or `package`"):
        load_registry(path)


def test_missing_registry_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model registry not found"):
        load_registry(tmp_path / "absent.yaml")
