"""Message catalogues for everything a person reads (reports, the console): Simplified Chinese and English.

Catalogues are standard gettext ``.po`` files shipped as package data, one per language and domain::

    masking/i18n/locale/<lang>/LC_MESSAGES/<domain>.po

Domains: ``common`` (Art. 7 categories and article text, verdict words), ``reports`` (audit and
rescan HTML reports) and ``console`` (the browser console). Message ids are the English text, so
English needs no catalogue. The ``.po`` files are read with Babel at run time (no compile step,
nothing generated in the tree) and cached per process.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from masking.errors import ConfigError

LANGUAGES: tuple[str, ...] = ("en", "zh")
DEFAULT_LANGUAGE = "en"
DOMAINS: tuple[str, ...] = ("common", "reports", "console")


def normalize_language(value: str | None) -> str:
    """``zh``, ``zh-CN``, ``zh_Hans``, ``en-GB`` or an Accept-Language header -> ``zh`` or ``en``.

    ``None`` or an empty value gives the default; a header picks the first language we have.
    """
    if not value:
        return DEFAULT_LANGUAGE
    for part in value.split(","):
        tag = part.split(";", 1)[0].strip().lower().replace("_", "-")
        base = tag.split("-", 1)[0]
        if base in LANGUAGES:
            return base
    if "," in value or ";" in value:  # a browser header with nothing we have: fall back quietly
        return DEFAULT_LANGUAGE
    raise ConfigError(f"language {value!r}: expected one of {', '.join(LANGUAGES)}")


@cache
def translations(language: str, domain: str) -> gettext.NullTranslations:
    """The catalogue of one language and domain (English and missing catalogues: identity)."""
    if domain not in DOMAINS:
        raise ConfigError(f"message domain {domain!r}: expected one of {', '.join(DOMAINS)}")
    lang = normalize_language(language)
    if lang == "en":
        return gettext.NullTranslations()
    res = resources.files(__package__).joinpath("locale", lang, "LC_MESSAGES", f"{domain}.po")
    if not res.is_file():
        return gettext.NullTranslations()
    with res.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=domain)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=domain)


def gettext_for(language: str, domain: str):  # type: ignore[no-untyped-def]
    """``_`` for one language and domain: ``_ = gettext_for("zh", "reports"); _("Verdict")``."""
    return translations(language, domain).gettext


@cache
def catalogue(language: str, domain: str) -> dict[str, str]:
    """Every message of a domain in one language, ``{id: text}``, for code that translates elsewhere
    (the console's JavaScript gets it as JSON). The ids are those of the Chinese catalogue."""
    _ = gettext_for(language, domain)
    res = resources.files(__package__).joinpath("locale", "zh", "LC_MESSAGES", f"{domain}.po")
    if not res.is_file():
        return {}
    with res.open("rb") as fh:
        ids = [m.id for m in read_po(fh, locale="zh", domain=domain) if m.id and isinstance(m.id, str)]
    return {i: _(i) for i in ids}
