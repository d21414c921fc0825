"""Rendering report pages: the Jinja2 environment, anchors, paging, writing the files.

Templates live in `masking/report/templates/` (package data): `base.html.j2` is the one layout
(UTF-8, inline stylesheet built from the palette, page navigation), `audit.html.j2` and
`rescan.html.j2` extend it. Autoescape is on: every value a template prints is HTML-escaped unless
a filter below marks it safe (only `data_uri`, which builds a base64 URI from bytes).

Languages: English and Simplified Chinese, through gettext catalogues (`masking.i18n`): domain
`reports` for the page text (`{{ _("...") }}`), domain `common` for shared words (verdicts,
categories, recommendations, statuses; the template function `term(word)`), and the Art. 7 text,
which the Chinese pages give in its original Chinese (`article(category)`).

Paging: a report with more than `PAGE_SIZE` inputs or cameras is split into files of `PAGE_SIZE`
each (`report.html`, `report-2.html`, ...), every page linking to the others; the first page also
lists every input or camera with its verdict and a link to its page.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from masking._atomic import atomic_write
from masking.i18n import normalize_language, translations
from masking.report.palette import CATEGORIES, css_palette

PAGE_SIZE = 200  # inputs (audit) or cameras (rescan) per report file
_SLUG = re.compile(r"[^A-Za-z0-9]+")


def _data_uri(data: bytes | None, mime: str = "image/jpeg") -> Markup:
    if not data:
        return Markup("")
    return Markup(f"data:{mime};base64,{base64.b64encode(bytes(data)).decode('ascii')}")


def _num(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value):.0%}"


@cache
def environment(lang: str) -> jinja2.Environment:
    """The Jinja2 environment of one language (cached): autoescape, i18n, palette, filters."""
    lang = normalize_language(lang)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("masking.report", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang, "reports"), newstyle=True)  # type: ignore[attr-defined]
    common = translations(lang, "common").gettext
    env.globals.update(
        lang=lang,
        html_lang="zh-Hans" if lang == "zh" else "en",
        palette=css_palette(),
        categories=tuple(CATEGORIES),
        term=lambda word: "" if word is None else common(str(word)),
        article=lambda category: article_text(category, lang),
    )
    env.filters.update(data_uri=_data_uri, num=_num, pct=_pct)
    return env


def article_text(category: str | None, lang: str) -> str:
    """The Art. 7 text a verdict rests on, naming the category found, in `lang`.

    English gives exactly the audit JSON's `article` field; Chinese gives the article in its
    original Chinese (catalogue `common`) and the category in Chinese.
    """
    from masking.art7 import ARTICLE_7, CATEGORY_TEXT

    _ = translations(lang, "common").gettext
    if category is None:
        return _(ARTICLE_7)
    place = _(CATEGORY_TEXT.get(category, category))
    sep = "" if normalize_language(lang) == "zh" else " "  # Chinese sentences are not separated by spaces
    return _(ARTICLE_7) + sep + _("This view shows a %(place)s.") % {"place": place}


def render(template: str, lang: str, **context: Any) -> str:
    """Render a template in a language; `generated` (UTC now) is added unless given."""
    context.setdefault("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    return environment(lang).get_template(template).render(**context)


def anchors(keys: Iterable[str], prefix: str) -> dict[str, str]:
    """Unique, injective HTML ids for `keys`: `prefix-<ascii slug>-<12 hex of sha256>`.

    Keys that differ only in punctuation (`hotel:3f`, `hotel_3f`, `hotel.3f`) or in non-ASCII
    letters get different ids through the hash; if two 12-digit hashes ever collided in one page,
    those keys get the full 64-digit hash.
    """
    out: dict[str, str] = {}
    for key in dict.fromkeys(keys):
        slug = _SLUG.sub("-", key).strip("-")[:40]
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        out[key] = f"{prefix}-{slug + '-' if slug else ''}{digest[:12]}"
    seen: dict[str, str] = {}
    for key, value in list(out.items()):
        if value in seen:
            for k in (key, seen[value]):
                out[k] = out[k][: out[k].rfind("-") + 1] + hashlib.sha256(k.encode("utf-8")).hexdigest()
        seen[value] = key
    return out


def page_paths(path: Path, n_items: int, page_size: int = PAGE_SIZE) -> list[Path]:
    """The files of a report of `n_items`: `path`, then `stem-2.suffix`, `stem-3.suffix`, ..."""
    n_pages = max(1, -(-n_items // page_size))
    return [path] + [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(2, n_pages + 1)]


def chunks(items: Sequence[Any], page_size: int = PAGE_SIZE) -> list[Sequence[Any]]:
    """`items` cut into pages of `page_size` (at least one page, maybe empty)."""
    return [items[i : i + page_size] for i in range(0, len(items), page_size)] or [items[:0]]


def navigation(paths: Sequence[Path], current: int) -> list[dict[str, Any]]:
    """Links between the pages of one report (relative file names: the pages travel together)."""
    return [{"number": i + 1, "href": p.name, "current": i == current} for i, p in enumerate(paths)]


def write_pages(pages: Sequence[tuple[Path, str]], what: str = "report") -> list[Path]:
    """Write each (path, HTML) page atomically; returns the paths."""
    for path, html in pages:
        atomic_write(path, html.encode("utf-8"), what)
    return [path for path, _ in pages]
