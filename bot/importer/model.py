"""Plain data produced by the plan importer, before anything touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

COMPARATORS = (">=", ">", "<=", "<", "=", "decrease", "increase")


class PlanFormatError(ValueError):
    """A plan file that cannot be read as a plan; the message is one line for the user."""


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
