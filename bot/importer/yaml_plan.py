"""The plain YAML form, for plans that are not Chinese official documents.

Schema::

    plan:
      title: Acme 2024 plan          # required, text
      doc_number: ACME-2024-01       # optional, text
      issuer: Acme Ltd               # optional, text
      issued_on: 2024-01-15          # optional, date YYYY-MM-DD
      contact_name: Jane Doe         # optional, text
      contact_phone: "0750-3503835"  # optional, text (quote it: 0750... is an octal number)
    sections:                        # required, a non-empty list
      - title: Grow the business     # required, text
        items:                       # optional list (a section may be empty)
          - title: Open two offices  # required, text
            number: 1                # optional positive whole number, unique in the plan;
                                     #   default: the previous item's number + 1 (first: 1)
            body: More detail.       # optional, text
            lead_units: [Sales]      # optional, a list of texts; one text is one unit
            support_units: [HR, Finance]  # optional, like lead_units
            deadline: 2024-06-30     # optional, date YYYY-MM-DD
            targets:                 # optional list; when the key is absent the targets are
                                     #   extracted from title + body (extract_targets);
                                     #   [] means none
              - metric: offices opened   # required, text
                comparator: ">="         # required, one of >=, >, <=, <, =, decrease,
                                         #   increase (quote >=, >, <=, <)
                value: 2                 # required, a number
                unit: ""                 # optional, text, default ""
                text: open two offices   # optional, text, the phrase the target comes from;
                                         #   default "<metric> <comparator> <value><unit>"
                additive: false          # optional, true/false, default false

Rules:

* The plan needs at least one item. Sections are numbered 1, 2, ... in order and labelled
  with that number; an item's label is its number.
* Fields not listed above are errors (a misspelt ``dealine`` must not vanish silently), and
  so are keys given twice in one mapping.
* Text fields accept numbers too (``title: 2024`` is the text "2024"), not true/false.
  Whole numbers written with a leading zero (``0750123``) stay text.
* Dates are ``YYYY-MM-DD``; an impossible date such as 2024-02-30 is "not a date".
* The file is read like any text file (UTF-8, UTF-16 with BOM, or GB18030) and parsed with
  a subclass of ``yaml.SafeLoader`` that only adds the duplicate-key check, the
  leading-zero and invalid-date rules above, and two limits checked while the document is
  composed, before any Python object is built: nesting deeper than 32 levels, and more than
  100,000 nodes or 500,000 characters of text when each alias counts as what it stands for
  ("billion laughs": a few lines of anchors and aliases standing for millions of items, or
  for one long text many times). PyYAML composes nested
  collections by recursion, so the depth is checked on the way down, long before Python's
  recursion limit. A plan is also refused with more than 2,000 items or sections, or an item
  whose title and body are over 10,000 characters (see ``limits``).

Errors are ``PlanFormatError`` with one line naming the file and the path of the bad field,
one key per kind of problem (``importer.yaml.*``; the value found is described with
``importer.yaml.got.*``). In English::

    plan.yaml: sections[1].items[0].deadline: not a date (expected YYYY-MM-DD, e.g. 2024-06-30)
    plan.yaml: YAML syntax error at line 7, column 18: mapping values are not allowed here

The problem text of a syntax error is PyYAML's own, in English in every locale.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from bot.importer import limits
from bot.importer.model import (
    COMPARATORS,
    ParsedItem,
    ParsedPlan,
    ParsedSection,
    ParsedTarget,
    Phrase,
    PlanFormatError,
)
from bot.importer.readers import read_text_file
from bot.importer.table_plan import join_sentences
from bot.importer.targets import extract_targets

PLAN_FIELDS = ("title", "doc_number", "issuer", "issued_on", "contact_name", "contact_phone")
SECTION_FIELDS = ("title", "items")
ITEM_FIELDS = (
    "title",
    "number",
    "body",
    "lead_units",
    "support_units",
    "deadline",
    "targets",
)
TARGET_FIELDS = ("metric", "comparator", "value", "unit", "text", "additive")
_ISO_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


class _OverLimit(yaml.YAMLError):
    """The document is over a limit (``importer.limit.*`` key and limit); caught by the caller."""

    def __init__(self, key: str, limit: int) -> None:
        super().__init__(key)
        self.key = key
        self.limit = limit


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, keeps odd scalars as text, and bounds nesting
    and alias expansion while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # Composed so far, each alias counted as what it stands for: nodes, and characters of
        # scalar text (an alias repeats a long text as surely as it repeats a list).
        self._nodes = 0
        self._chars = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (nodes, chars)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            node = super().compose_node(parent, index)
            # a node still being composed (an alias inside its own anchor) counts as one
            self._count(*self._expanded.get(id(node), (1, 0)))
            return node
        anchor = self.peek_event().anchor
        self._depth += 1
        if self._depth > limits.MAX_YAML_DEPTH:
            raise _OverLimit("importer.limit.yaml_depth", limits.MAX_YAML_DEPTH)
        nodes, chars = self._nodes, self._chars
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, len(node.value) if isinstance(node, ScalarNode) else 0)
        if anchor is not None:
            self._expanded[id(node)] = (self._nodes - nodes, self._chars - chars)
        return node

    def _count(self, nodes: int, chars: int) -> None:
        self._nodes += nodes
        self._chars += chars
        if self._nodes > limits.MAX_YAML_NODES:
            raise _OverLimit("importer.limit.yaml_nodes", limits.MAX_YAML_NODES)
        if self._chars > limits.MAX_TEXT_CHARS:
            raise _OverLimit("importer.limit.text", limits.MAX_TEXT_CHARS)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int | str:  # type: ignore[override]
        raw = str(node.value)
        if len(raw) > 1 and raw.startswith("0") and raw.isdigit():
            return raw  # a phone number, not an octal
        return super().construct_yaml_int(node)

    def construct_yaml_timestamp(self, node: ScalarNode) -> date | str:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return str(node.value)  # reported as "not a date"

    def construct_value_str(self, node: ScalarNode) -> str:
        return str(node.value)  # YAML 1.1 resolves a bare "=" to the "value" tag


_PlanLoader.add_constructor("tag:yaml.org,2002:int", _PlanLoader.construct_yaml_int)
_PlanLoader.add_constructor("tag:yaml.org,2002:timestamp", _PlanLoader.construct_yaml_timestamp)
_PlanLoader.add_constructor("tag:yaml.org,2002:value", _PlanLoader.construct_value_str)


def parse_yaml_plan(path: Path) -> ParsedPlan:
    """Read a plan written in the plain YAML form."""
    text = read_text_file(path)
    return parse_yaml_text(text, source=path.name)


def parse_yaml_text(text: str, *, source: str = "plan.yaml") -> ParsedPlan:
    """Parse the text of a plan written in the plain YAML form."""
    loader = _PlanLoader(text)  # a SafeLoader subclass: safe
    try:
        data = loader.get_single_data()
    except _OverLimit as exc:
        raise PlanFormatError(exc.key, file=source, limit=exc.limit) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, source) from exc
    except yaml.YAMLError as exc:
        raise PlanFormatError(
            "importer.yaml.syntax_unplaced", file=source, problem=_one_line(str(exc))
        ) from exc
    finally:
        loader.dispose()
    return _Validator(source).plan(data)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, source: str) -> PlanFormatError:
    mark = exc.problem_mark or exc.context_mark
    problem = _one_line(exc.problem or exc.context or "invalid YAML")
    if mark is None:
        return PlanFormatError("importer.yaml.syntax_unplaced", file=source, problem=problem)
    lines = text.splitlines()
    unquoted = mark.line < len(lines) and re.search(r"comparator:\s*[<>]", lines[mark.line])
    return PlanFormatError(
        "importer.yaml.syntax_comparator" if unquoted else "importer.yaml.syntax",
        file=source,
        line=mark.line + 1,
        column=mark.column + 1,
        problem=problem,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(value: object) -> Phrase:
    """What a wrong value is, for "got ..." in a message."""
    if value is None:
        return Phrase("importer.yaml.got.nothing")
    if isinstance(value, bool):
        return Phrase("importer.yaml.got.bool")
    if isinstance(value, int | float):
        return Phrase("importer.yaml.got.number", value=value)
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        return Phrase("importer.yaml.got.text", value=shown)
    if isinstance(value, list):
        return Phrase("importer.yaml.got.list")
    if isinstance(value, dict):
        return Phrase("importer.yaml.got.mapping")
    if isinstance(value, date):
        return Phrase("importer.yaml.got.date", value=value.isoformat())
    return Phrase("importer.yaml.got.other", value=type(value).__name__)


_TOP_LEVEL = Phrase("importer.yaml.top_level")


class _Validator:
    """Turns the loaded YAML data into a ParsedPlan, naming the bad field on error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, where: str | Phrase | None = None, **params: Any) -> PlanFormatError:
        """The problem ``key`` at the field path ``where`` (when the message has one)."""
        if where is not None:
            params["where"] = where
        return PlanFormatError(key, file=self.source, **params)

    def mapping(
        self, value: object, where: str | Phrase, fields: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(
                "importer.yaml.not_a_mapping", where, fields=", ".join(fields), got=_describe(value)
            )
        for key in value:
            if key not in fields:
                raise self.error(
                    "importer.yaml.unknown_field", where, field=str(key), fields=", ".join(fields)
                )
        return value

    def text(self, value: object, where: str, *, required: bool = False) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.error("importer.yaml.missing", where)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error("importer.yaml.not_text", where, got=_describe(value))
        return str(value).strip()

    def required_text(self, value: object, where: str) -> str:
        text = self.text(value, where, required=True)
        assert text is not None
        return text

    def date(self, value: object, where: str) -> date | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            try:
                year, month, day = (int(part) for part in value.strip().split("-"))
                return date(year, month, day)
            except ValueError:
                pass
        raise self.error("importer.yaml.not_a_date", where)

    def units(self, value: object, where: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return [self.required_text(value, where)]
        if not isinstance(value, list):
            raise self.error("importer.yaml.not_a_unit_list", where, got=_describe(value))
        units: list[str] = []
        for index, entry in enumerate(value):
            unit = self.required_text(entry, f"{where}[{index}]")
            if unit not in units:
                units.append(unit)
        return units

    def plan(self, data: object) -> ParsedPlan:
        if data is None:
            raise self.error("importer.yaml.no_data")
        top = self.mapping(data, _TOP_LEVEL, ("plan", "sections"))
        if "plan" not in top:
            raise self.error("importer.yaml.plan_missing")
        header = self.mapping(top["plan"], "plan", PLAN_FIELDS)
        plan = ParsedPlan(
            title=self.required_text(header.get("title"), "plan.title"),
            doc_number=self.text(header.get("doc_number"), "plan.doc_number"),
            issuer=self.text(header.get("issuer"), "plan.issuer"),
            issued_on=self.date(header.get("issued_on"), "plan.issued_on"),
            contact_name=self.text(header.get("contact_name"), "plan.contact_name"),
            contact_phone=self.text(header.get("contact_phone"), "plan.contact_phone"),
        )
        sections = top.get("sections")
        if sections is None:
            raise self.error("importer.yaml.sections_missing")
        if not isinstance(sections, list) or not sections:
            raise self.error("importer.yaml.not_a_section_list", got=_describe(sections))
        limits.check_section_count(len(sections), self.source)
        numbers: dict[int, str] = {}
        for position, raw_section in enumerate(sections, start=1):
            where = f"sections[{position - 1}]"
            section = self.mapping(raw_section, where, SECTION_FIELDS)
            plan.sections.append(
                ParsedSection(
                    number=position,
                    label=str(position),
                    title=self.required_text(section.get("title"), f"{where}.title"),
                )
            )
            items = section.get("items")
            if items is None:
                continue
            if not isinstance(items, list):
                raise self.error(
                    "importer.yaml.not_an_item_list", f"{where}.items", got=_describe(items)
                )
            limits.check_item_count(len(plan.items) + len(items), self.source)
            for index, raw_item in enumerate(items):
                plan.items.append(self.item(raw_item, f"{where}.items[{index}]", position, numbers))
        if not plan.items:
            raise self.error("importer.yaml.no_items")
        return plan

    def item(self, raw: object, where: str, section: int, numbers: dict[int, str]) -> ParsedItem:
        item = self.mapping(raw, where, ITEM_FIELDS)
        title = self.required_text(item.get("title"), f"{where}.title")
        body = self.text(item.get("body"), f"{where}.body") or ""
        number = item.get("number")
        if number is None:
            number = (next(reversed(numbers)) if numbers else 0) + 1
        elif isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise self.error("importer.yaml.bad_number", f"{where}.number", got=_describe(number))
        if number in numbers:
            raise self.error(
                "importer.yaml.duplicate_number",
                f"{where}.number",
                number=number,
                other=numbers[number],
            )
        numbers[number] = where
        limits.check_item_length(len(title) + len(body), str(number), self.source)
        if "targets" in item:
            targets = self.targets(item["targets"], f"{where}.targets")
        else:
            targets = extract_targets(join_sentences((title, body)))
        return ParsedItem(
            number=number,
            label=str(number),
            section=section,
            title=title,
            body=body,
            lead_units=self.units(item.get("lead_units"), f"{where}.lead_units"),
            support_units=self.units(item.get("support_units"), f"{where}.support_units"),
            deadline=self.date(item.get("deadline"), f"{where}.deadline"),
            targets=targets,
        )

    def targets(self, raw: object, where: str) -> list[ParsedTarget]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.error("importer.yaml.not_a_target_list", where, got=_describe(raw))
        targets: list[ParsedTarget] = []
        for index, entry in enumerate(raw):
            at = f"{where}[{index}]"
            target = self.mapping(entry, at, TARGET_FIELDS)
            metric = self.required_text(target.get("metric"), f"{at}.metric")
            comparator = target.get("comparator")
            if comparator is None:
                raise self.error("importer.yaml.missing", f"{at}.comparator")
            if comparator not in COMPARATORS:
                raise self.error(
                    "importer.yaml.bad_comparator",
                    f"{at}.comparator",
                    got=_describe(comparator),
                    comparators=", ".join(COMPARATORS),
                )
            value = target.get("value")
            if value is None:
                raise self.error("importer.yaml.missing", f"{at}.value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error("importer.yaml.not_a_number", f"{at}.value", got=_describe(value))
            unit = self.text(target.get("unit"), f"{at}.unit") or ""
            additive = target.get("additive", False)
            if not isinstance(additive, bool):
                raise self.error(
                    "importer.yaml.not_a_bool", f"{at}.additive", got=_describe(additive)
                )
            text = self.text(target.get("text"), f"{at}.text") or (
                f"{metric} {comparator} {value:g}{unit}"
            )
            targets.append(
                ParsedTarget(
                    text=text,
                    metric=metric,
                    comparator=str(comparator),
                    value=float(value),
                    unit=unit,
                    additive=additive,
                )
            )
        return targets
