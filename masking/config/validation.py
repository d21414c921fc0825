"""The validation vocabulary shared by every config model.

* `StrictModel`: the one pydantic base of config models (`extra="forbid"`, frozen; a model that must
  stay mutable overrides `frozen` only).
* `format_validation_error`: the one formatter turning a pydantic `ValidationError` into the message
  people read (file, camera / zone / field, what was expected).
* `Identifier` / `identifier_problem`: camera, zone and serve-camera ids, with the rule in words.
* `repeated`: values that occur more than once.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

ID_MAX_CHARS = 128
ID_PUNCTUATION = "_.:@-"
ID_RULE = (
    f"1-{ID_MAX_CHARS} characters: letters and digits of any script (e.g. `lobby`, `摄像头1`, `门-301`) and "
    f"the marks `{' '.join(ID_PUNCTUATION)}`; it starts with a letter or digit; no spaces, slashes or "
    "other symbols"
)


class StrictModel(BaseModel):
    """Base of every config model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (empty when all are unique)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)


# --------------------------------------------------------------------------- identifiers
def _id_char_ok(ch: str, first: bool) -> bool:
    cat = unicodedata.category(ch)
    if cat.startswith("L") or cat == "Nd":
        return True
    if first:
        return False
    return cat in ("Mn", "Mc") or ch in ID_PUNCTUATION  # combining marks belong to letters in many scripts


def identifier_problem(value: str) -> str | None:
    """Why `value` is not a valid id (None when it is). See `ID_RULE`."""
    if not value:
        return "it is empty"
    if len(value) > ID_MAX_CHARS:
        return f"it has {len(value)} characters (at most {ID_MAX_CHARS})"
    if not _id_char_ok(value[0], first=True):
        return f"it starts with {value[0]!r} (the first character must be a letter or digit)"
    bad = sorted({ch for ch in value if not _id_char_ok(ch, first=False)})
    if bad:
        return "it contains " + ", ".join(repr(ch) for ch in bad[:5])
    if unicodedata.normalize("NFC", value) != value:
        return "it is not in Unicode NFC form (retype it, or normalise the file to NFC)"
    return None


def identifier_ok(value: str) -> bool:
    """Whether a string is a valid camera/zone id."""
    return identifier_problem(value) is None


def _check_identifier(value: str) -> str:
    problem = identifier_problem(value)
    if problem:
        raise ValueError(f"{value[:ID_MAX_CHARS + 8]!r} is not a valid id: {problem}. An id has {ID_RULE}")
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]


# --------------------------------------------------------------------------- error messages
# list fields whose entries are named by an id in messages: field -> (what, id keys)
_LISTS = {
    "cameras": ("camera", ("camera_id", "name")),
    "zones": ("zone", ("id",)),
    "models": ("model", ("name",)),
    "detectors": ("detector", ("model",)),
}


def _describe_loc(raw: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into `camera 'x', zone 'y', field 'z'` using the raw data for
    the ids of list entries (`cameras`, `zones`)."""
    parts: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in _LISTS and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            idx = loc[i + 1]
            seq = node.get(key) if isinstance(node, dict) else None
            entry = seq[idx] if isinstance(seq, list) and idx < len(seq) else None
            what, id_key = _LISTS[key]
            ident = next((entry.get(k) for k in id_key if isinstance(entry, dict) and entry.get(k) is not None), None)
            parts.append(f"{what} {ident!r}" if isinstance(ident, (str, int)) else f"{what} #{idx + 1}")
            node, i = entry, i + 2
            continue
        rest = ".".join(str(k) for k in loc[i:] if not str(k).startswith(("function-", "tagged-union")))
        if rest:
            parts.append(f"field {rest!r}")
        break
    return ", ".join(parts) if parts else "top level"


def format_validation_error(exc: ValidationError, raw: Any, source: str, what: str = "config") -> str:
    """A readable multi-line message for a pydantic error on a config file or settings object.

    `source` names the file (or the option group), `what` the kind of thing that is invalid.
    """
    lines = [f"{source}: invalid {what} ({exc.error_count()} problem(s)):"]
    for err in exc.errors(include_url=False, include_input=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  - {_describe_loc(raw, tuple(err['loc']))}: {msg}")
    return "\n".join(lines)
