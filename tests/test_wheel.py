"""The package works when installed as a wheel: package data travels, the registry is found.

The wheel is built from a copy of the source tree (nothing is written into the checkout) and
installed into a fresh virtual environment; its dependencies come from the test's own environment
(a `.pth` file added after the install), but `masking` itself comes from the wheel, run from a
directory that holds no source tree.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _package_data(root: Path) -> set[str]:
    """Every file under masking/ that is not Python source: what the wheel must carry."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / "masking").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "masking", src / "masking", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = src / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
                    "--outdir", str(dist), str(src)], check=True, capture_output=True, text=True)
    (whl,) = dist.glob("masking-*.whl")
    return whl


def test_the_wheel_carries_the_package_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    expected = _package_data(ROOT)
    assert "masking/models/registry.yaml" in expected
    assert any(n.startswith("masking/i18n/locale/") and n.endswith(".po") for n in expected)
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


def test_an_installed_wheel_finds_its_registry(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True)
    # the dependencies: this environment's site-packages (not its editable `masking`, which is
    # loaded through a .pth file there that a path listed here does not run)
    own = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    Path(own, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MASKING_REGISTRY")}
    where = subprocess.run([str(py), "-c", "import masking; print(masking.__file__)"], cwd=elsewhere, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    done = subprocess.run([str(venv / "bin" / "masking"), "models", "list", "--json"], cwd=elsewhere, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "yolox-nano" in done.stdout and "yunet" in done.stdout
