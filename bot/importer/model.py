"""Plain data produced by the plan importer, before anything touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.i18n import Translator

COMPARATORS = (">=", ">", "<=", "<", "=", "decrease", "increase")


class Phrase:
    """A localisable part of a PlanFormatError message (``importer.*`` key + params).

    Used as a parameter of another message, it is rendered in that message's locale: the
    YAML validator's "got the text 'lots'" or "top level", say.
    """

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params

    def render(self, t: Translator) -> str:
        """The phrase in the translator's locale."""
        return t(self.key, **_rendered(self.params, t))

    def __repr__(self) -> str:
        return f"Phrase({self.key!r}, **{self.params!r})"


class PlanFormatError(ValueError):
    """A plan file that cannot be read as a plan; the message is one line for the user.

    It carries a message key (under ``importer.`` in templates/locales/<locale>.importer.yaml)
    and its parameters; every message names the file. ``render(t)`` gives the message in the
    translator's locale, ``str()`` in English.
    """

    def __init__(self, key: str, *, file: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.file = file
        self.params = params

    def render(self, t: Translator) -> str:
        """The one-line message in the translator's locale."""
        return t(self.key, file=self.file, **_rendered(self.params, t))

    def __str__(self) -> str:
        return self.render(Translator("en"))


def _rendered(params: dict[str, Any], t: Translator) -> dict[str, Any]:
    return {
        name: value.render(t) if isinstance(value, Phrase) else value
        for name, value in params.items()
    }


@dataclass
class ParsedTarget:
    """A quantitative target found in an item's text."""

    text: str  # the source phrase, e.g. "新增学位超1万个"
    metric: str  # what is measured, e.g. "新增学位"
    comparator: str  # one of COMPARATORS
    value: float
    unit: str  # e.g. "%", "个", "个百分点"; "" when none
    additive: bool = False  # summed over reporters (one per county, say)


@dataclass
class ParsedSection:
    """A top-level section (一、二、...)."""

    number: int  # 1-based position in the document
    label: str  # the document's own label, e.g. "一"
    title: str


@dataclass
class ParsedItem:
    """A work item: the deepest numbered level that carries tasks."""

    number: int  # unique in the plan: what people type in chat
    label: str  # the document's own label, e.g. "9" or "三.2"
    section: int  # ParsedSection.number
    title: str
    body: str = ""
    subsection: str | None = None  # a level between section and item, when there is one
    lead_units: list[str] = field(default_factory=list)
    support_units: list[str] = field(default_factory=list)
    deadline: date | None = None  # suggested deadline written in the text
    targets: list[ParsedTarget] = field(default_factory=list)


@dataclass
class ParsedPlan:
    """A whole plan document."""

    title: str
    doc_number: str | None = None
    issuer: str | None = None
    issued_on: date | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    sections: list[ParsedSection] = field(default_factory=list)
    items: list[ParsedItem] = field(default_factory=list)
