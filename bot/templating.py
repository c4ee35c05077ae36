"""Jinja2 templates for multi-line messages, per locale (templates/<locale>/<name>.j2)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.db import resource_dir
from bot.i18n import DEFAULT_LOCALE, Translator

STATUS_MARK = {"green": "🟢", "amber": "🟡", "red": "🔴", "done": "✅", "none": "⚪"}


def format_number(value: float | int | None) -> str:
    """A number as people read it: 6,500 and 0.5, no trailing .0."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def target_share(target: Any, value: float | None) -> int | None:
    """How far a value is towards a target, in whole percent (None when it cannot be said)."""
    if value is None or not target.value:
        return None
    if target.comparator in ("<", "<="):
        return None  # a ceiling: being under it is the goal, a share means nothing
    return round(100 * value / target.value)


@cache
def environment(autoescape: bool = False) -> Environment:
    """The template environment (escaping on for HTML templates)."""
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals["status_mark"] = STATUS_MARK
    env.globals["share"] = target_share
    env.filters["num"] = format_number
    return env


def render(name: str, locale: str, **context: Any) -> str:
    """Render templates/<locale>/<name>.j2 with the locale's translator as `t`."""
    env = environment()
    locale = locale if (resource_dir("templates") / locale).is_dir() else DEFAULT_LOCALE
    template = env.get_template(f"{locale}/{name}.j2")
    return template.render(t=Translator(locale), **context).strip()
