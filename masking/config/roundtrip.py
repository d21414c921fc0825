"""Edit one camera of a zones file in place, keeping its comments, key order and layout.

`ZonesDocument` reads the file on every call (so an edit made on disk meanwhile is never
overwritten with a stale copy), writes a camera drafted as JSON over the camera's node of the
round-trip YAML tree (ruamel.yaml), validates the whole new text exactly as `masking zones check`
does (strict loader, same models), and only then writes it: a backup of the previous file
(`FILE.bak`), then the new file atomically. An invalid draft writes nothing.

Merging reuses the existing nodes wherever the value did not change: numbers keep their spelling
(`0.10` stays `0.10`), zones are matched by id (so their comments move with them), keys keep their
order and new keys are appended. New lists of points and small mappings are written in flow style
(`[[0.1, 0.2], ...]`, `{mode: blur, strength: 41}`), as the example zones files are.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from masking._atomic import atomic_write
from masking.config.draft import DraftError, error, validate_camera
from masking.config.yamlio import loads_yaml
from masking.config.zones import parse_zones
from masking.errors import ConfigError

log = logging.getLogger(__name__)

_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0))


def _layouts(text: str) -> list[tuple[int, int, int]]:
    """(mapping, sequence, offset) indents to try: ruamel's guess for this text first, then common ones."""
    try:
        _, seq, offset = load_yaml_guess_indent(text)
    except YAMLError:
        seq, offset = None, None
    guessed: list[tuple[int, int, int]] = []
    if isinstance(seq, int) and isinstance(offset, int):  # mappings most likely indented as sequence items are
        guessed = [(m, seq, offset) for m in dict.fromkeys((seq - offset, 2, 4)) if m >= 2]
    return guessed + [i for i in _INDENTS if i not in guessed]


def _yaml(indent: tuple[int, int, int] = (2, 4, 2)) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16  # never re-wrap a long polygon line
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return y


def _dump(yaml: YAML, doc: Any) -> str:
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def plain(node: Any) -> Any:
    """A round-trip YAML node as plain JSON-able data (dict, list, str, int, float, bool, None)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# --------------------------------------------------------------------------- merging
def _scalar_list(v: Any) -> bool:
    return isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)


def fresh(value: Any) -> Any:
    """Plain data as new round-trip nodes: points, rings and small mappings in flow style."""
    if isinstance(value, dict):
        node = CommentedMap((k, fresh(v)) for k, v in value.items())
        if all(not isinstance(v, (dict, list)) or _scalar_list(v) for v in value.values()):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(fresh(v) for v in value)
        if all(not isinstance(v, (dict, list)) or _scalar_list(v) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def _same_scalar(old: Any, new: Any) -> bool:
    if isinstance(old, (dict, list)) or isinstance(new, (dict, list)):
        return False
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool) and old == new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return float(old) == float(new)
    if isinstance(old, str) and isinstance(new, str):
        return old == new
    return old is None and new is None


def _by_id(seq: list[Any]) -> bool:
    return all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in seq)


def _merge_ided(old: CommentedSeq, new: list[dict[str, Any]]) -> CommentedSeq:
    wanted = [item["id"] for item in new]
    for i in reversed(range(len(old))):
        if old[i].get("id") not in wanted:
            del old[i]
    for pos, item in enumerate(new):
        j = next((k for k in range(pos, len(old)) if old[k].get("id") == item["id"]), None)
        if j is None:
            old.insert(pos, fresh(item))
            continue
        if j != pos:
            old.insert(pos, old.pop(j))
        _set(old, pos, merge(old[pos], item))
    return old


def _set(container: Any, key: Any, value: Any) -> None:
    if container[key] is not value:
        container[key] = value


def merge(old: Any, new: Any) -> Any:
    """Write plain `new` over round-trip `old`, reusing old nodes (and their comments) where possible."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key in old:
                _set(old, key, merge(old[key], value))
            else:
                old[key] = fresh(value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, dict) and "exterior" in new:  # polygon: short -> full form
        node = fresh(new)
        node["exterior"] = merge(old, new["exterior"])
        return node
    if isinstance(old, CommentedMap) and isinstance(new, list) and "exterior" in old:  # polygon: full -> short form
        return merge(old["exterior"], new)
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        if new and _by_id(old) and _by_id(new):
            return _merge_ided(old, new)
        del old[len(new):]
        for i, value in enumerate(new):
            if i < len(old):
                _set(old, i, merge(old[i], value))
            else:
                old.append(fresh(value))
        return old
    if _same_scalar(old, new):
        return old
    return fresh(new)


# --------------------------------------------------------------------------- the document
class ZonesDocument:
    """The zones file a console edits, one camera at a time.

    Args:
        path: the zones file. It may not exist yet: the first save creates it.
        extra_cameras: camera ids offered for editing that the file does not hold yet (a save adds
            the camera at the end of the file).
    """

    def __init__(self, path: str | Path, extra_cameras: list[str] | tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        self.backup = self.path.with_name(self.path.name + ".bak")
        self.extra_cameras = tuple(extra_cameras)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def _read(self) -> tuple[str | None, Any, YAML]:
        """(text or None when the file does not exist, round-trip tree, the YAML that re-dumps it)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, CommentedMap([("cameras", CommentedSeq())]), _yaml()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read zones file: {exc.strerror or exc}") from exc
        parse_zones(loads_yaml(text, str(self.path)), str(self.path))  # what `masking zones check` says
        for indent in _layouts(text):  # the layout the file was written with, when one reproduces it exactly
            yaml = _yaml(indent)
            try:
                doc = yaml.load(text)
            except YAMLError as exc:
                raise ConfigError(f"{self.path}: invalid YAML: {exc}") from exc
            if _dump(yaml, doc) == text:
                return text, doc, yaml
        log.info("%s: no YAML layout reproduces the file exactly; saving re-indents it", self.path)
        yaml = _yaml()
        return text, yaml.load(text), yaml

    def cameras(self) -> list[dict[str, Any]]:
        """Every camera as plain data: the file's, then the extra ones not in it (with no zones)."""
        _, doc, _ = self._read()
        out = [plain(c) for c in doc["cameras"]]
        have = {c.get("camera_id") for c in out}
        out += [{"camera_id": cid, "zones": []} for cid in self.extra_cameras if cid not in have]
        return out

    def camera(self, camera_id: str) -> dict[str, Any] | None:
        """One camera as plain data, or None if neither the file nor the extra cameras hold it."""
        return next((c for c in self.cameras() if c.get("camera_id") == camera_id), None)

    # ------------------------------------------------------------------ saving
    def save_camera(self, camera_id: str, draft: Any) -> dict[str, Any]:
        """Validate `draft` and write it as camera `camera_id`; returns the camera as saved.

        Raises `DraftError` (nothing written) when the draft, or the whole file with it, is invalid.
        """
        validate_camera(draft, camera_id)
        with self._lock:
            old_text, doc, yaml = self._read()
            cameras = doc["cameras"]
            index = next((i for i, c in enumerate(cameras) if c.get("camera_id") == camera_id), None)
            if index is None:
                if camera_id not in self.extra_cameras:
                    raise DraftError([error(f"no camera {camera_id!r} in {self.path}", field="camera_id")])
                cameras.append(fresh(draft))
            else:
                _set(cameras, index, merge(cameras[index], draft))
            text = _dump(yaml, doc)
            try:
                parse_zones(loads_yaml(text, str(self.path)), str(self.path))
            except ConfigError as exc:
                raise DraftError([error(str(exc))]) from exc
            if text != old_text:
                if old_text is not None:
                    atomic_write(self.backup, old_text, "zones backup")
                atomic_write(self.path, text, "zones file")
                log.info("%s: saved camera %s (backup: %s)", self.path, camera_id, self.backup)
        saved = self.camera(camera_id)
        assert saved is not None
        return saved
