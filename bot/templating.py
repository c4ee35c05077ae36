"""Jinja2 templates for multi-line messages, per locale (templates/<locale>/<name>.j2)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from bot.db import resource_dir
from bot.i18n import DEFAULT_LOCALE, Translator
from bot.services.progress import target_share

STATUS_MARK = {"green": "🟢", "amber": "🟡", "red": "🔴", "done": "✅", "none": "⚪"}

# WeCom markdown (links, <font>, headings, bold, quotes, code, @mentions) has no escape of its
# own that its clients honour (a backslash is shown, or "\[...\]" taken for math), so the
# characters that make markup are swapped for their full-width look-alikes, as Chinese text
# writes them anyway. Without "[" and "<" no link can form; a line break in a value would let
# it start a heading or a quote of its own line, so it becomes a space.
MARKDOWN_LOOKALIKES = str.maketrans(
    {
        "[": "［",
        "]": "］",
        "<": "＜",
        ">": "＞",
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "#": "＃",
        "~": "～",
        "|": "｜",
        "\\": "＼",
        "&": "＆",
        "\n": " ",
        "\r": " ",
    }
)


def markdown_text(value: object) -> str:
    """A value as WeCom markdown shows it literally: it can make no link and no markup."""
    return str(value).translate(MARKDOWN_LOOKALIKES)


def _markdown_finalize(value: object) -> object:
    """Every {{ value }} of a WeCom markdown template, escaped unless it is a macro's markup."""
    if hasattr(value, "__html__"):  # a macro's output: template markup, its values escaped
        return value
    return Markup(markdown_text(value))


def format_number(value: float | int | None) -> str:
    """A number as people read it: 6,500 and 0.5, no trailing .0."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def share_of(target: Any, value: float | None) -> int | None:
    """How far a value is towards a target row, in whole percent."""
    return target_share(target.comparator, target.value, value)


@cache
def environment(escape: str = "none") -> Environment:
    """The template environment; values are escaped for "html" (Telegram), "markdown" (WeCom).

    Markdown escaping rides on Jinja's autoescaping: each value is made markdown-safe (and
    marked safe) by `finalize` before the HTML escape would see it, and macros return markup
    that is not escaped again; so every value in a WeCom template is escaped, none forgotten.
    """
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        autoescape=escape in ("html", "markdown"),
        finalize=_markdown_finalize if escape == "markdown" else None,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,  # templates ship with the code: no stat() on every render
    )
    env.globals["status_mark"] = STATUS_MARK
    env.globals["share"] = share_of
    env.filters["num"] = format_number
    return env


DIGEST_FORMATS = ("text", "html", "markdown")
DIGEST_ESCAPE = {"text": "none", "html": "html", "markdown": "markdown"}


@cache
def template_locale(locale: str) -> str:
    """The locale whose templates exist: the one asked for, else the default."""
    return locale if (resource_dir("templates") / locale).is_dir() else DEFAULT_LOCALE


def render_digest(digest: Any, fmt: str, locale: str) -> str:
    """The weekly digest as plain text, HTML or markdown (user text escaped); `fmt` may also
    name a channel (its markup)."""
    if fmt not in DIGEST_FORMATS:
        from bot.channels.registry import spec_of

        spec = spec_of(fmt)
        fmt = spec.markup if spec is not None else fmt
    if fmt not in DIGEST_FORMATS:
        raise ValueError(f"unknown digest format {fmt!r}")
    env = environment(DIGEST_ESCAPE[fmt])
    locale = template_locale(locale)
    template = env.get_template(f"{locale}/digest.j2")
    text = template.render(t=Translator(locale), d=digest, fmt=fmt)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def render(name: str, locale: str, **context: Any) -> str:
    """Render templates/<locale>/<name>.j2 with the locale's translator as `t`."""
    env = environment()
    locale = template_locale(locale)
    template = env.get_template(f"{locale}/{name}.j2")
    return template.render(t=Translator(locale), **context).strip()
