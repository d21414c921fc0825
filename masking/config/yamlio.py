"""Strict YAML loading for config files (zones, serve, fleet manifests, registry).

* A duplicate key is an error, not a silent overwrite; so is a key that is a list or a mapping.
* The file must be UTF-8 text (a UTF-8 byte-order mark is allowed) of at most
  `limits.CONFIG_MAX_BYTES`, nested at most `limits.CONFIG_MAX_DEPTH` levels.
* Error messages name the file, line and column and what is wrong, and never quote the file's
  text: a config may point at any file (a manifest's `zones:`), and an error must not disclose it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from masking import limits
from masking.errors import ConfigError

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 4x faster


class _StrictLoader(_Base):  # type: ignore[misc]
    """SafeLoader that refuses duplicate and unhashable mapping keys."""


def _where(loader: Any, mark: Any) -> str:
    return f"{getattr(loader, 'source', mark.name)}:{mark.line + 1}:{mark.column + 1}"


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(
                f"{_where(loader, key_node.start_mark)}: a mapping key is a {type(key).__name__}; "
                "keys must be plain words or numbers"
            ) from None
        if key in mapping:
            raise ConfigError(
                f"{_where(loader, key_node.start_mark)}: duplicate key {str(key)[:80]!r} (each key may appear once in a mapping)"
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _describe(exc: yaml.YAMLError) -> str:
    """A YAML error as `line:col: problem (context)`, without the snippet of the file's text."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(p for p in (exc.problem, exc.context) if p) or "syntax error"
        return f"{mark.line + 1}:{mark.column + 1}: {what}" if mark is not None else f" {what}"
    return f" {type(exc).__name__}"


def _check_depth(text: str, source: str) -> None:
    """Refuse collections nested deeper than the limit (before building them: composing is recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.CONFIG_MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise ConfigError(
                    f"{source}:{line}: collections nested more than "
                    f"{limits.CONFIG_MAX_DEPTH} levels deep (a config nests a few levels)"
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def loads_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text strictly (see the module); problems raise `ConfigError` naming `source`."""
    if "\x00" in text:
        raise ConfigError(f"{source}: not a YAML text file (it holds NUL characters; binary or UTF-16?)")
    try:
        _check_depth(text, source)
        loader = _StrictLoader(text)
        loader.source = source
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:{_describe(exc)} (invalid YAML)") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ConfigError(f"{source}: nested too deeply") from None


def read_config_text(path: str | Path, what: str = "config file") -> str:
    """The text of a UTF-8 config file of at most `limits.CONFIG_MAX_BYTES`; `ConfigError` otherwise."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(limits.CONFIG_MAX_BYTES + 1)
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limits.CONFIG_MAX_BYTES:
        raise ConfigError(
            f"{p}: {what} larger than {limits.CONFIG_MAX_BYTES // (1024 * 1024)} MiB (the limit; see docs/errors.md)"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{p}: {what} is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: {what} is not UTF-8 text (byte {exc.start}: 0x{data[exc.start]:02x}); "
            "save it as UTF-8 (Latin-1, GBK and binary files are not read)"
        ) from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML config file strictly (see `loads_yaml` and `read_config_text`)."""
    return loads_yaml(read_config_text(path), source=str(path))
