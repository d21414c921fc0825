"""The one palette: every colour used to draw on pictures (BGR) and in report pages (CSS hex).

Annotations (`masking.annotate`), report pictures and the report stylesheet all read it, so a zone
kind, an Art. 7 category or a verdict has one colour everywhere.
"""

from __future__ import annotations

from masking.config.zones import ZoneKind

Color = tuple[int, int, int]  # BGR, as OpenCV draws

ZONE_KINDS: dict[ZoneKind, Color] = {
    ZoneKind.prohibited_view: (40, 40, 230),  # red: an opening onto an Art. 7 area
    ZoneKind.privacy_mask: (230, 120, 30),  # blue
    ZoneKind.watch: (0, 200, 230),  # yellow
}

CATEGORIES: dict[str, Color] = {
    "guest_room": (60, 60, 220),
    "dormitory": (30, 120, 240),
    "bathroom": (200, 140, 20),
    "toilet": (180, 40, 150),
    "shower": (220, 200, 30),
    "changing_room": (60, 170, 60),
}
OTHER_CATEGORY: Color = (160, 160, 160)
MASKED_EVIDENCE: Color = (110, 110, 110)  # evidence already under a privacy_mask/prohibited_view zone
PROPOSED_MASK: Color = (0, 230, 255)  # dashed outline of a proposed privacy_mask

VERDICTS: dict[str, Color] = {
    "violation": (40, 40, 198),
    "review": (0, 108, 239),
    "compliant": (50, 125, 46),
    "failed": (85, 85, 85),
    "pending": (136, 136, 136),
}

INK: Color = (34, 34, 34)  # page text
MUTED: Color = (102, 102, 102)  # secondary text
RULE: Color = (221, 221, 221)  # borders
PANEL: Color = (246, 246, 246)  # table headers, code blocks
ERROR: Color = (0, 0, 176)


def category_color(category: str | None, masked: bool = False) -> Color:
    """The colour of an evidence box: its category's, grey once it is masked."""
    if masked:
        return MASKED_EVIDENCE
    return CATEGORIES.get(category or "", OTHER_CATEGORY)


def css(bgr: Color) -> str:
    """`#rrggbb` for a BGR colour."""
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def css_palette() -> dict[str, str]:
    """Every colour the stylesheet uses, by name (verdict-*, category-*, kind-*, and the page colours)."""
    out = {f"verdict-{k}": css(v) for k, v in VERDICTS.items()}
    out.update({f"category-{k}": css(v) for k, v in CATEGORIES.items()})
    out.update({f"kind-{k.value}": css(v) for k, v in ZONE_KINDS.items()})
    out.update(ink=css(INK), muted=css(MUTED), rule=css(RULE), panel=css(PANEL), error=css(ERROR),
               other=css(OTHER_CATEGORY), masked=css(MASKED_EVIDENCE), proposal=css(PROPOSED_MASK))
    return out
