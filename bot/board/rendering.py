"""The board's HTML: Jinja2 pages from templates/board/, every value escaped, words from the
catalog (templates/locales/*.board.yaml) in the configured locale.

The wall's item cards are the one piece written here rather than in a template: the wall lists
up to thousands of them, and a card put together in Python is one escaped chunk of output
where the same card in Jinja is some forty (bench/board.py measures the difference: about half
the wall's rendering time at 1,000 items).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from html import escape as esc
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from bot.db import resource_dir
from bot.i18n import Translator
from bot.services.items import ItemView
from bot.templating import format_number

# The order statuses are counted and offered in: what needs attention first.
STATUS_ORDER = ("red", "amber", "none", "green", "done")
# A target's comparator as a sign; "decrease" and "increase" are words (board.goal.*).
SIGNS = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "=": "="}
QUOTE = 60  # characters of the last report's text on a card, "…" included


def truncate(text: str, limit: int) -> str:
    """Text cut to `limit` characters, the last one "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cache
def environment() -> Environment:
    """The board's template environment (HTML autoescaping, undefined names are errors)."""
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates") / "board")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() on every render
    )
    env.filters["num"] = format_number
    env.globals["STATUS_ORDER"] = STATUS_ORDER
    return env


@dataclass(frozen=True)
class Formats:
    """How one page says things: times in the plan's time zone, words in the locale, links
    under the board's root (the path part of WEB_BASE_URL)."""

    t: Translator
    now: datetime
    tz: ZoneInfo
    root: str = ""
    _words: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def word(self, key: str) -> str:
        """A catalog message without parameters, looked up once per page."""
        found = self._words.get(key)
        if found is None:
            found = self._words[key] = self.t(key)
        return found

    def label(self, status: str) -> str:
        """A status in words (滞后, 预警 ...)."""
        return self.word(f"status_label.{status}")

    def ago(self, moment: datetime) -> str:
        """How long ago a moment was, roughly (3 天前)."""
        seconds = (self.now - moment).total_seconds()
        if seconds < 60:
            return self.word("board.ago.now")
        if seconds < 3600:
            return self.t("board.ago.minutes", n=int(seconds // 60))
        if seconds < 86400:
            return self.t("board.ago.hours", n=int(seconds // 3600))
        return self.t("board.ago.days", n=int(seconds // 86400))

    def when(self, moment: datetime) -> str:
        """A moment in the plan's time zone, to the minute."""
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def day(self, value: date | None) -> str:
        """A date, or the words for none."""
        return value.isoformat() if value else self.word("board.no_deadline")

    def goal(self, target: Any) -> str:
        """A target's goal as people read it: ≥ 80 %, 下降 0.5 个百分点."""
        value = f"{format_number(target.value)} {target.unit}".strip()
        if target.comparator in SIGNS:
            return f"{SIGNS[target.comparator]} {value}"
        if target.comparator in ("decrease", "increase"):
            return self.t(f"board.goal.{target.comparator}", value=value)
        return f"{target.comparator} {value}"

    def owners(self, view: ItemView) -> str:
        """Who answers for an item: its units · its people (lead first)."""
        units = "、".join(view.owner_units)
        names = "、".join(c.name for c, _ in view.people)
        if units and names:
            return f"{units} · {names}"
        return units or names or self.word("board.unassigned")

    def card(self, view: ItemView) -> Markup:
        """An item's card on the wall: status, percent bar, why, deadline and owners, and the
        newest report with how long ago (every value escaped)."""
        item, status, percent = view.item, view.status, view.percent
        number, why, latest = item.number, view.verdict.why, view.latest
        if latest is None:
            last = esc(self.word("board.no_report"))
        else:
            figure = f" {latest.percent}%" if latest.percent is not None else ""
            said = f" {self.word(f'report_status.{latest.status}')}" if latest.status else ""
            last = esc(f"{self.ago(latest.created_at)} · {latest.contact}{figure}{said}")
            if latest.text:
                last += f"{esc(self.word('board.colon'))}<q>{esc(truncate(latest.text, QUOTE))}</q>"
        meta = f"{self.word('board.deadline')} {self.day(view.deadline)} · {self.owners(view)}"
        width = max(0, min(100, percent or 0))
        # status is one of STATUSES, the numbers are ints: only words need escaping
        return Markup(
            f'<article class="item st-{status}" data-item="{number}" data-status="{status}">'
            f'<h3><a href="{esc(self.root)}/board/item/{item.id}">'
            f'<span class="no">{number}.</span>{esc(item.title)}</a></h3>'
            f'<div class="state"><span class="badge st-{status}">{esc(self.label(status))}'
            f'</span><span class="bar" aria-hidden="true"><span style="width: {width}%"></span>'
            f'</span><span class="pct">{"–" if percent is None else f"{percent}%"}</span></div>'
            + (f'<p class="why">{esc(self.t(why.key, **why.params))}</p>' if why else "")
            + f'<p class="meta">{esc(meta)}</p><p class="last">{last}</p></article>\n'
        )

    def cards(self, views: Iterable[ItemView]) -> Markup:
        """The cards of a list of items, in order."""
        return Markup("".join([self.card(view) for view in views]))


def render_page(name: str, formats: Formats, **context: Any) -> str:
    """Render templates/board/<name>.html."""
    template = environment().get_template(f"{name}.html")
    return template.render(
        t=formats.t,
        root=formats.root,
        label=formats.label,
        ago=formats.ago,
        when=formats.when,
        day=formats.day,
        goal=formats.goal,
        owners=formats.owners,
        cards=formats.cards,
        locale=formats.t.locale,
        **context,
    )
