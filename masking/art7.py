"""The Art. 7 vocabulary: the places cameras must not see, the kinds they group into, the article.

One module for every part that names them: the model registry's evidence rules, the audit
(evidence, verdict, result text), scene classifiers, labelled manifests, rescans and reports.
"""

from __future__ import annotations

from typing import Literal, get_args

ARTICLE_7 = (
    "Art. 7 (Guangdong public-security video image information rules; paraphrase): image-capture "
    "equipment must not be installed in, or aimed into, places where people are entitled to privacy: "
    "hotel guest rooms, collective dormitories, public baths and shower rooms, changing rooms, toilets "
    "and similar places."
)

Category = Literal["guest_room", "dormitory", "bathroom", "toilet", "shower", "changing_room"]
CATEGORIES: tuple[Category, ...] = get_args(Category)

# Kinds of place: evidence of one kind adds up (a sink adds to a toilet); scene classifiers learn kinds.
Kind = Literal["sleeping_place", "wet_room"]
SLEEPING_PLACE: Kind = "sleeping_place"
WET_ROOM: Kind = "wet_room"
KIND_OF: dict[str, Kind] = {
    "guest_room": SLEEPING_PLACE,
    "dormitory": SLEEPING_PLACE,
    "bathroom": WET_ROOM,
    "toilet": WET_ROOM,
    "shower": WET_ROOM,
    "changing_room": WET_ROOM,
}

CATEGORY_TEXT: dict[str, str] = {
    "guest_room": "hotel or guest-house guest room (a sleeping place)",
    "dormitory": "collective dormitory (several beds, or beds stacked one above another)",
    "bathroom": "bathroom (bath, washbasin with WC)",
    "toilet": "toilet",
    "shower": "bath or shower room",
    "changing_room": "changing room",
}


def kind_of(category: str) -> str:
    """The kind of place of a category (a name that is not a category is its own kind)."""
    return KIND_OF.get(category, category)


def article_for(category: str | None) -> str:
    """The article text a verdict rests on, naming the category when there is one."""
    if category is None:
        return ARTICLE_7
    return f"{ARTICLE_7} This view shows a {CATEGORY_TEXT.get(category, category)}."
