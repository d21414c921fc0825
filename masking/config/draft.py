"""Validate one camera drafted in an editor, with the same models as `masking zones check`.

An editor needs each problem next to the zone and field it names, so errors come back as records
``{"zone": zone id or None, "field": "polygon" | "style.block" | ... or None, "message": str}``
instead of the multi-line text of `format_validation_error`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from masking.config.zones import Camera
from masking.errors import ConfigError

ErrorRecord = dict[str, Any]  # {"zone": str | None, "field": str | None, "message": str}
_STYLE_TAGS = frozenset({"fill", "pixelate", "blur"})


class DraftError(ConfigError):
    """A drafted camera is invalid; `errors` holds one record per problem."""

    def __init__(self, errors: list[ErrorRecord]) -> None:
        super().__init__("; ".join(_line(e) for e in errors))
        self.errors = errors


def _line(err: ErrorRecord) -> str:
    where = ", ".join(f"{k} {err[k]!r}" for k in ("zone", "field") if err.get(k) is not None)
    return f"{where}: {err['message']}" if where else str(err["message"])


def error(message: str, zone: str | None = None, field: str | None = None) -> ErrorRecord:
    """One error record."""
    return {"zone": zone, "field": field, "message": message}


def _field(loc: tuple[Any, ...]) -> str | None:
    parts: list[str] = []
    for i, key in enumerate(loc):
        text = str(key)
        if text.startswith(("function-", "tagged-union")):
            continue
        if i > 0 and loc[i - 1] == "style" and text in _STYLE_TAGS:  # the union's tag, not a field
            continue
        parts.append(text)
    return ".".join(parts) or None


def draft_errors(exc: ValidationError, raw: Any) -> list[ErrorRecord]:
    """The errors of `Camera.model_validate(raw)` as records naming the zone (by id) and field."""
    out: list[ErrorRecord] = []
    zones = raw.get("zones") if isinstance(raw, dict) else None
    for err in exc.errors():
        loc = tuple(err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        zone: str | None = None
        if len(loc) >= 2 and loc[0] == "zones" and isinstance(loc[1], int):
            item = zones[loc[1]] if isinstance(zones, list) and loc[1] < len(zones) else None
            zid = item.get("id") if isinstance(item, dict) else None
            zone = str(zid) if zid is not None else f"#{loc[1] + 1}"
            loc = loc[2:]
        out.append(error(message, zone, _field(loc)))
    return out


def validate_camera(raw: Any, camera_id: str | None = None) -> Camera:
    """The drafted camera as a `Camera`; `DraftError` with one record per problem if invalid.

    `camera_id`, when given, is the id the draft must keep (an editor edits one camera in place).
    """
    if not isinstance(raw, dict):
        raise DraftError([error("expected a JSON object describing one camera")])
    if camera_id is not None and raw.get("camera_id") != camera_id:
        raise DraftError([error(f"camera_id must stay {camera_id!r}, got {raw.get('camera_id')!r}", field="camera_id")])
    try:
        return Camera.model_validate(raw)
    except ValidationError as exc:
        raise DraftError(draft_errors(exc, raw)) from exc
