"""Fleet manifests: which cameras a rescan covers, their zones and their footage.

Two forms describe the same `Fleet`:

* a manifest file, YAML (`cameras:` list) or CSV (one row per camera or per footage entry);
* a folder following the convention: one sub-folder per camera (the folder name is the camera id),
  optionally holding a `zones.yaml`; media files directly in the folder are one camera each.

Paths in a manifest are relative to the manifest's folder. Every error names the file, the row or
camera and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from masking.config.validation import (
    ID_RULE,
    Identifier,
    StrictModel,
    format_validation_error,
    identifier_problem,
    repeated,
)
from masking.config.yamlio import load_yaml, read_config_text
from masking.config.zones import Camera, load_zones
from masking.errors import ConfigError
from masking.media import is_stream_url, media_kind

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
CSV_COLUMNS = ("camera_id", "site", "zones", "zones_camera", "footage", "stream_seconds")
ZONES_FILE_NAME = "zones.yaml"


class CameraEntry(StrictModel):
    """One camera of a fleet manifest."""

    model_config = ConfigDict(frozen=False)

    camera_id: Identifier = Field(description="Camera id (letters and digits of any script, `_.:@-`; at most 128 characters).")
    site: str | None = Field(None, max_length=500, description="Free-text site description.")
    zones: str | None = Field(
        None, description="Zones YAML file (relative to the manifest). Without it the camera is audited "
        "without zones: every prohibited area found is a finding, nothing is assumed masked."
    )
    zones_camera: str | None = Field(
        None, description="Camera id inside the zones file; default: the entry's camera_id if the file "
        "has it, else the file's only camera."
    )
    footage: list[str] = Field(
        min_length=1, description="Image or video files, folders (searched recursively), globs, or "
        "stream URLs (rtsp://, http(s)://, ...), relative to the manifest."
    )
    stream_seconds: float | None = Field(
        None, gt=0, le=3600, description="Seconds sampled from each stream URL; default: the manifest's."
    )

    @field_validator("footage")
    @classmethod
    def _footage_ok(cls, v: list[str]) -> list[str]:
        for entry in v:
            if not entry.strip():
                raise ValueError("footage entries must not be empty")
        return [e.strip() for e in v]


class ManifestFile(StrictModel):
    """A YAML fleet manifest."""

    model_config = ConfigDict(frozen=False)

    version: int = Field(MANIFEST_VERSION, ge=1, le=MANIFEST_VERSION, description="Manifest format version.")
    stream_seconds: float = Field(
        10.0, gt=0, le=3600, description="Default seconds sampled from each stream URL (10 s: enough "
        "frames at 1 fps to see past a passer-by, short enough for thousands of cameras)."
    )
    cameras: list[CameraEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> ManifestFile:
        dups = repeated(c.camera_id for c in self.cameras)
        if dups:
            raise ValueError(f"camera ids must be unique; repeated: {dups}")
        return self


class FleetCamera(StrictModel):
    """A resolved camera: id, site, its zones (or None) and its footage entries (absolute)."""

    camera_id: str
    site: str | None = None
    zones_path: str | None = None
    zones: Camera | None = None
    footage: tuple[str, ...]
    stream_seconds: float

    def zones_key(self) -> str:
        """A hash of the zones config the camera is audited with (part of the resume key)."""
        text = self.zones.model_dump_json() if self.zones is not None else "null"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Fleet(StrictModel):
    """The cameras of one rescan, and where they were described."""

    source: str
    cameras: tuple[FleetCamera, ...]


# --------------------------------------------------------------------------- helpers
def _resolve_zones(entry: CameraEntry, base: Path, source: str, root: Path | None = None) -> tuple[str | None, Camera | None]:
    if entry.zones is None:
        if entry.zones_camera is not None:
            raise ConfigError(f"{source}: camera {entry.camera_id!r}: zones_camera given without a zones file")
        return None, None
    path = (base / entry.zones).resolve()
    _confine(path, root, f"{source}: camera {entry.camera_id!r}: zones file")
    if not path.is_file():
        raise ConfigError(f"{source}: camera {entry.camera_id!r}: zones file {path} does not exist")
    zf = load_zones(path)
    wanted = entry.zones_camera
    if wanted is None and any(c.camera_id == entry.camera_id for c in zf.cameras):
        wanted = entry.camera_id
    cam = zf.camera(wanted, source=f"{path} (camera {entry.camera_id!r} of {source})")
    return str(path), cam


def _resolve_footage(entry: str, base: Path) -> str:
    if is_stream_url(entry):
        return entry
    p = Path(entry).expanduser()
    return str(p if p.is_absolute() else base.resolve() / p)


def _confine(path: Path, root: Path | None, what: str) -> None:
    """With `--root`, refuse (before reading it) a path that resolves outside the root folder."""
    if root is None:
        return
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise ConfigError(f"{what} {path} is outside the root {root} (--root confines the paths of a manifest)")


def _build(manifest: ManifestFile, base: Path, source: str, root: Path | None = None) -> Fleet:
    cams = []
    for entry in manifest.cameras:
        zones_path, zones = _resolve_zones(entry, base, source, root)
        for f in entry.footage:
            if not is_stream_url(f):
                _confine(Path(_resolve_footage(f, base)), root, f"{source}: camera {entry.camera_id!r}: footage")
        cams.append(
            FleetCamera(
                camera_id=entry.camera_id,
                site=entry.site,
                zones_path=zones_path,
                zones=zones,
                footage=tuple(_resolve_footage(f, base) for f in entry.footage),
                stream_seconds=entry.stream_seconds or manifest.stream_seconds,
            )
        )
    return Fleet(source=source, cameras=tuple(cams))


def _validate(raw: Any, source: str) -> ManifestFile:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with a `cameras` list at the top level")
    try:
        return ManifestFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, source)) from exc


# --------------------------------------------------------------------------- loaders
def load_yaml_manifest(path: Path, root: Path | None = None) -> Fleet:
    """Load a YAML fleet manifest (see the README, "Rescans", for the format)."""
    raw = load_yaml(path)
    return _build(_validate(raw, str(path)), path.parent, str(path), root)


def load_csv_manifest(path: Path, root: Path | None = None) -> Fleet:
    """Load a CSV fleet manifest.

    Columns: camera_id (required), footage (required), site, zones, zones_camera, stream_seconds.
    A footage cell may hold several entries separated by `;`. A camera may span several rows: its
    footage entries add up, other non-empty cells must agree. A CSV with a `file` column and neither
    `camera_id` nor `footage` is a labelled snapshot list: one camera per file.
    """
    source = str(path)
    text = read_config_text(path, "manifest")
    try:
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "file" in header and "footage" not in header and "camera_id" not in header:
                return _snapshot_list(path, reader, root)
            unknown = [h for h in header if h not in CSV_COLUMNS]
            missing = [h for h in ("camera_id", "footage") if h not in header]
            if missing or unknown:
                raise ConfigError(
                    f"{source}: bad CSV header {header}: "
                    + (f"missing {missing}; " if missing else "")
                    + (f"unknown {unknown}; " if unknown else "")
                    + f"expected columns {list(CSV_COLUMNS)} (camera_id and footage required)"
                )
            rows = [_csv_row(row, source, reader.line_num) for row in reader]
    except csv.Error as exc:
        raise ConfigError(f"{source}: invalid CSV: {exc}") from exc
    merged: dict[str, dict[str, Any]] = {}
    for lineno, row in enumerate(rows, start=2):
        cid = row.get("camera_id", "")
        if not cid:
            raise ConfigError(f"{source}:{lineno}: camera_id is empty")
        entries = [e.strip() for e in row.get("footage", "").split(";") if e.strip()]
        if not entries:
            raise ConfigError(f"{source}:{lineno}: camera {cid!r}: footage is empty")
        cam = merged.setdefault(cid, {"camera_id": cid, "footage": []})
        cam["footage"].extend(entries)
        for key in ("site", "zones", "zones_camera", "stream_seconds"):
            value: Any = row.get(key, "")
            if not value:
                continue
            if key == "stream_seconds":
                try:
                    value = float(value)
                except ValueError as exc:
                    raise ConfigError(f"{source}:{lineno}: stream_seconds {value!r} is not a number") from exc
            if key in cam and cam[key] != value:
                raise ConfigError(
                    f"{source}:{lineno}: camera {cid!r}: {key} {value!r} disagrees with an earlier row ({cam[key]!r})"
                )
            cam[key] = value
    if not merged:
        raise ConfigError(f"{source}: no cameras (the CSV has a header but no rows)")
    return _build(_validate({"cameras": list(merged.values())}, source), path.parent, source, root)


def _csv_row(row: dict[str | None, Any], source: str, lineno: int) -> dict[str, str]:
    """A CSV row with its cells stripped; a row with more cells than the header is an error."""
    if None in row:
        raise ConfigError(f"{source}:{lineno}: the row has more cells than the header has columns")
    return {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def _snapshot_list(path: Path, reader: csv.DictReader[str], root: Path | None = None) -> Fleet:
    """A labelled snapshot list (`file, label, ..., notes`, as ../shared/eval/dev/manifest.csv):
    one camera per file, named after the file's stem; `notes` (if any) becomes the site text."""
    source = str(path)
    cams = []
    for lineno, row in enumerate(reader, start=2):
        f = (row.get("file") or "").strip()
        if not f:
            raise ConfigError(f"{source}:{lineno}: file is empty")
        cams.append({"camera_id": Path(f).stem, "footage": [f],
                     "site": (row.get("notes") or "").strip()[:500] or None})
    if not cams:
        raise ConfigError(f"{source}: no rows")
    return _build(_validate({"cameras": cams}, source), path.parent, source, root)


def load_manifest(path: str | Path, root: Path | None = None) -> Fleet:
    """Load a fleet manifest by extension: `.yaml`/`.yml` or `.csv`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: manifest file does not exist")
    ext = p.suffix.lower()
    if ext in (".yaml", ".yml"):
        return load_yaml_manifest(p, root)
    if ext == ".csv":
        return load_csv_manifest(p, root)
    raise ConfigError(f"{p}: unknown manifest type {ext!r} (expected .yaml, .yml or .csv)")


def folder_fleet(folder: str | Path, stream_seconds: float = 10.0, confine: Path | None = None) -> Fleet:
    """The fleet of a folder following the convention.

    Each sub-folder is a camera named after the folder; its media files (searched recursively) are
    its footage and an optional `zones.yaml` inside gives its zones (the camera with the folder's
    name, or the file's only camera). Each media file directly in `folder` is a camera of its own,
    named after the file's stem. Other files are skipped and logged.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    cams: list[FleetCamera] = []
    skipped: list[str] = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            cid = child.name
            zones_file = child / ZONES_FILE_NAME
            entry = CameraEntry(
                camera_id=_checked_id(cid, child),
                zones=str(zones_file) if zones_file.is_file() else None,
                footage=[str(child)],
            )
            _confine(child, confine, f"{root}: camera folder")
            zones_path, zones = _resolve_zones(entry, root, str(root), confine)
            cams.append(FleetCamera(camera_id=cid, zones_path=zones_path, zones=zones,
                                    footage=(str(child),), stream_seconds=stream_seconds))
        elif media_kind(child) is not None:
            cams.append(FleetCamera(camera_id=_checked_id(child.stem, child), footage=(str(child),),
                                    stream_seconds=stream_seconds))
        else:
            skipped.append(child.name)
    if skipped:
        log.info("%s: skipped %d file(s) that are neither media nor camera folders: %s",
                 root, len(skipped), ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
    if not cams:
        raise ConfigError(f"{root}: no cameras found (expected one sub-folder per camera, or media files)")
    dups = repeated(c.camera_id for c in cams)
    if dups:
        raise ConfigError(f"{root}: camera ids repeated (a folder and a file with the same name?): {dups}")
    return Fleet(source=str(root), cameras=tuple(cams))


def _checked_id(cid: str, where: Path) -> str:
    problem = identifier_problem(cid)
    if problem:
        raise ConfigError(
            f"{where}: {cid!r} is not a valid camera id: {problem}. An id has {ID_RULE}; "
            "rename it or use a manifest"
        )
    return cid


def fleet_inputs(fleet: Fleet, source: str | Path) -> list[Path]:
    """Every file a fleet reads (the manifest, zones files, footage files and the files directly in
    footage folders): what no output may overwrite."""
    from masking.paths import expand_inputs

    footage = [f for c in fleet.cameras for f in c.footage if not is_stream_url(f)]
    return expand_inputs([source, *(c.zones_path for c in fleet.cameras), *footage])


def load_fleet(source: str | Path, stream_seconds: float = 10.0, root: str | Path | None = None) -> Fleet:
    """A manifest file or a folder following the convention.

    A manifest may name any file the user can read (paths are relative to it, or absolute): it is
    trusted like a script. With `root`, every zones file, footage path and camera folder must resolve
    (links followed) inside that folder, checked before the file is read.
    """
    p = Path(source)
    confine = Path(os.path.realpath(root)) if root is not None else None
    if confine is not None and not confine.is_dir():
        raise ConfigError(f"--root {root}: not a folder")
    if p.is_dir():
        return folder_fleet(p, stream_seconds=stream_seconds, confine=confine)
    return load_manifest(p, confine)
