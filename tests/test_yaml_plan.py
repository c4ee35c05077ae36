"""The plain YAML plan form: the happy path and one clear message per mistake."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from bot.i18n import Translator
from bot.importer import yaml_plan
from bot.importer.model import ParsedSection, ParsedTarget, PlanFormatError
from bot.importer.yaml_plan import parse_yaml_plan

FIXTURE = Path(__file__).resolve().parent / "data" / "files" / "acme-2024.yaml"

MINIMAL = """\
plan:
  title: Acme 2024 plan
sections:
  - title: Grow the business
    items:
      - title: Open two offices
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(PlanFormatError) as err:
        parse_yaml_plan(write(tmp_path, text))
    message = str(err.value)
    assert "\n" not in message
    assert "\n" not in err.value.render(Translator("zh-CN"))
    return message


def test_fixture() -> None:
    plan = parse_yaml_plan(FIXTURE)
    assert plan.title == "Acme 2024 plan"
    assert plan.doc_number == "ACME-2024-01"
    assert plan.issuer == "Acme Ltd"
    assert plan.issued_on == date(2024, 1, 15)
    assert (plan.contact_name, plan.contact_phone) == ("Jane Doe", "0750-3503835")
    assert plan.sections == [
        ParsedSection(number=1, label="1", title="Grow the business"),
        ParsedSection(number=2, label="2", title="Look after the team"),
    ]
    offices, hire, survey, seats = plan.items
    assert (offices.number, offices.label, offices.section) == (1, "1", 1)
    assert offices.title == "Open two offices"
    assert offices.body == "One in Jiangmen, one in Foshan."
    assert offices.lead_units == ["Sales"]
    assert offices.support_units == ["HR", "Finance"]
    assert offices.deadline == date(2024, 6, 30)
    assert offices.targets == [
        ParsedTarget(
            text="open two offices",
            metric="offices opened",
            comparator=">=",
            value=2.0,
            unit="",
            additive=False,
        )
    ]
    assert (hire.number, hire.section, hire.lead_units, hire.support_units) == (
        2,
        1,
        ["HR"],
        [],
    )
    assert (hire.body, hire.deadline, hire.targets) == ("", None, [])
    assert (survey.number, survey.section, survey.deadline) == (10, 2, date(2024, 9, 30))
    assert survey.targets == []
    assert seats.number == 11  # the previous number + 1
    assert seats.lead_units == ["市教育局", "各县（市、区）教育局"]
    # no targets key: extracted from title + body
    assert [(t.metric, t.comparator, t.value, t.unit) for t in seats.targets] == [
        ("新增学位", ">", 10000.0, "个")
    ]


def test_minimal(tmp_path: Path) -> None:
    plan = parse_yaml_plan(write(tmp_path, MINIMAL))
    assert plan.title == "Acme 2024 plan"
    assert plan.doc_number is None and plan.issued_on is None
    assert [(i.number, i.label, i.title) for i in plan.items] == [(1, "1", "Open two offices")]


def test_targets_extracted_from_title_and_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def fake(text: str) -> list[ParsedTarget]:
        seen.append(text)
        return []

    monkeypatch.setattr(yaml_plan, "extract_targets", fake)
    parse_yaml_plan(write(tmp_path, MINIMAL + "        body: Jiangmen and Foshan\n"))
    assert seen == ["Open two offices。\nJiangmen and Foshan。"]


def test_target_defaults(tmp_path: Path) -> None:
    text = MINIMAL + (
        "        targets:\n"
        "          - {metric: 近视率, comparator: decrease, value: 0.5, unit: 个百分点}\n"
        "          - {metric: offices, comparator: =, value: 2, additive: true}\n"
    )
    plan = parse_yaml_plan(write(tmp_path, text))
    assert plan.items[0].targets == [
        ParsedTarget(
            text="近视率 decrease 0.5个百分点",
            metric="近视率",
            comparator="decrease",
            value=0.5,
            unit="个百分点",
        ),
        ParsedTarget(
            text="offices = 2", metric="offices", comparator="=", value=2.0, unit="", additive=True
        ),
    ]


def test_numbers_and_quoted_dates_are_accepted_as_text(tmp_path: Path) -> None:
    text = """\
    plan:
      title: 2024
      issued_on: "2024-01-15"
      contact_phone: 07503503835
    sections:
      - title: 1
        items:
          - title: 42
            deadline: "2024-6-30"
    """
    plan = parse_yaml_plan(write(tmp_path, text))
    assert plan.title == "2024"
    assert plan.issued_on == date(2024, 1, 15)
    assert plan.contact_phone == "07503503835"
    assert plan.sections[0].title == "1"
    assert plan.items[0].title == "42"
    assert plan.items[0].deadline == date(2024, 6, 30)


def test_gb18030_yaml(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_bytes(
        "plan:\n  title: 工作要点\nsections:\n  - title: 党建\n    items:\n"
        "      - title: 学习\n".encode("gb18030")
    )
    plan = parse_yaml_plan(path)
    assert (plan.title, plan.items[0].title) == ("工作要点", "学习")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            MINIMAL + "        deadline: 2024/06/30\n",
            "plan.yaml: sections[0].items[0].deadline: not a date (expected YYYY-MM-DD, "
            "e.g. 2024-06-30)",
            id="deadline-format",
        ),
        pytest.param(
            MINIMAL + "        deadline: 2024-02-30\n",
            "plan.yaml: sections[0].items[0].deadline: not a date (expected YYYY-MM-DD, "
            "e.g. 2024-06-30)",
            id="deadline-impossible",
        ),
        pytest.param(
            MINIMAL.replace("title: Acme 2024 plan", "title: Acme\n  issued_on: soon"),
            "plan.yaml: plan.issued_on: not a date (expected YYYY-MM-DD, e.g. 2024-06-30)",
            id="issued-on",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - {metric: m, comparator: '=>', value: 1}\n",
            "plan.yaml: sections[0].items[0].targets[0].comparator: the text '=>' is not one "
            "of >=, >, <=, <, =, decrease, increase",
            id="comparator",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - {metric: m, value: 1}\n",
            "plan.yaml: sections[0].items[0].targets[0].comparator: missing (required)",
            id="comparator-missing",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - {metric: m, comparator: '>', value: lots}\n",
            "plan.yaml: sections[0].items[0].targets[0].value: not a number (got the text 'lots')",
            id="value",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - {comparator: '>', value: 1}\n",
            "plan.yaml: sections[0].items[0].targets[0].metric: missing (required)",
            id="metric-missing",
        ),
        pytest.param(
            MINIMAL
            + "        targets:\n          - {metric: m, comparator: '>', value: 1, additive: 2}\n",
            "plan.yaml: sections[0].items[0].targets[0].additive: expected true or false, "
            "got the number 2",
            id="additive",
        ),
        pytest.param(
            MINIMAL + "        targets: several\n",
            "plan.yaml: sections[0].items[0].targets: expected a list of targets, got the "
            "text 'several'",
            id="targets-not-a-list",
        ),
        pytest.param(
            MINIMAL + "        number: 1\n      - title: Hire\n        number: 1\n",
            "plan.yaml: sections[0].items[1].number: duplicate item number 1 "
            "(also sections[0].items[0])",
            id="duplicate-number",
        ),
        pytest.param(
            MINIMAL + "        number: 2\n      - title: Hire\n        number: 1\n"
            "      - title: Train\n",
            "plan.yaml: sections[0].items[2].number: duplicate item number 2 "
            "(also sections[0].items[0])",
            id="duplicate-running-number",
        ),
        pytest.param(
            MINIMAL + "        number: 0\n",
            "plan.yaml: sections[0].items[0].number: not a positive whole number "
            "(got the number 0)",
            id="number-zero",
        ),
        pytest.param(
            MINIMAL + "        number: one\n",
            "plan.yaml: sections[0].items[0].number: not a positive whole number "
            "(got the text 'one')",
            id="number-text",
        ),
        pytest.param(
            MINIMAL.replace("      - title: Open two offices", "      - body: no title"),
            "plan.yaml: sections[0].items[0].title: missing (required)",
            id="item-title-missing",
        ),
        pytest.param(
            MINIMAL.replace("title: Open two offices", "title: '  '"),
            "plan.yaml: sections[0].items[0].title: missing (required)",
            id="item-title-blank",
        ),
        pytest.param(
            MINIMAL.replace("  - title: Grow the business", "  - items:").replace(
                "    items:\n", ""
            ),
            "plan.yaml: sections[0].title: missing (required)",
            id="section-title-missing",
        ),
        pytest.param(
            MINIMAL.replace("  title: Acme 2024 plan", "  doc_number: X"),
            "plan.yaml: plan.title: missing (required)",
            id="plan-title-missing",
        ),
        pytest.param(
            MINIMAL.replace("title: Acme 2024 plan", "title: [a, b]"),
            "plan.yaml: plan.title: not text (got a list)",
            id="plan-title-list",
        ),
        pytest.param(
            MINIMAL.replace("title: Acme 2024 plan", "title: yes"),
            "plan.yaml: plan.title: not text (got true/false)",
            id="plan-title-bool",
        ),
        pytest.param(
            "sections: []\n",
            "plan.yaml: plan: missing (required: a mapping with at least a title)",
            id="plan-missing",
        ),
        pytest.param(
            "plan:\n  title: x\n",
            "plan.yaml: sections: missing (required: a list of sections)",
            id="sections-missing",
        ),
        pytest.param(
            "plan:\n  title: x\nsections: []\n",
            "plan.yaml: sections: expected a list of sections, got a list",
            id="sections-empty",
        ),
        pytest.param(
            "plan:\n  title: x\nsections:\n  - title: s\n",
            "plan.yaml: sections: no items (add at least one item to a section)",
            id="no-items",
        ),
        pytest.param(
            MINIMAL + "        dealine: 2024-06-30\n",
            "plan.yaml: sections[0].items[0]: unknown field 'dealine' (expected one of: "
            "title, number, body, lead_units, support_units, deadline, targets)",
            id="unknown-field",
        ),
        pytest.param(
            MINIMAL + "extra: 1\n",
            "plan.yaml: top level: unknown field 'extra' (expected one of: plan, sections)",
            id="unknown-top-level",
        ),
        pytest.param(
            "- a\n- b\n",
            "plan.yaml: top level: expected a mapping with plan, sections, got a list",
            id="top-level-list",
        ),
        pytest.param(
            MINIMAL + "        lead_units: {a: 1}\n",
            "plan.yaml: sections[0].items[0].lead_units: expected a list of unit names, "
            "got a mapping",
            id="units-mapping",
        ),
        pytest.param(
            MINIMAL + "        support_units: [HR, '']\n",
            "plan.yaml: sections[0].items[0].support_units[1]: missing (required)",
            id="units-blank",
        ),
        pytest.param(
            "# only a comment\n",
            "plan.yaml: no YAML data (the file holds only comments)",
            id="only-comments",
        ),
        pytest.param(
            "plan:\n  title: x\n  title: y\nsections: []\n",
            "plan.yaml: YAML syntax error at line 3, column 3: duplicate key 'title'",
            id="duplicate-key",
        ),
        pytest.param(
            "plan:\n  title: a: b\nsections: []\n",
            "plan.yaml: YAML syntax error at line 2, column 11: mapping values are not "
            "allowed here",
            id="syntax",
        ),
        pytest.param(
            "plan:\n  title: x\n sections: []\n",
            "plan.yaml: YAML syntax error at line 3, column 2: expected <block end>, but found "
            "'<block mapping start>'",
            id="syntax-indentation",
        ),
        pytest.param(
            "plan:\n  title: [x\nsections: []\n",
            "plan.yaml: YAML syntax error at line 3, column 9: expected ',' or ']', but got ':'",
            id="syntax-flow",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - metric: m\n            comparator: >=\n",
            "plan.yaml: YAML syntax error at line 9, column 26: expected chomping or "
            "indentation indicators, but found '=' (quote the comparator, e.g. "
            'comparator: ">=")',
            id="unquoted-comparator",
        ),
    ],
)
def test_errors(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text) == message


@pytest.mark.parametrize(
    ("text", "chinese"),
    [
        pytest.param(
            MINIMAL + "        targets:\n          - {metric: m, comparator: '=>', value: 1}\n",
            "plan.yaml：sections[0].items[0].targets[0].comparator 是文本“=>”，"
            "应为以下之一：>=, >, <=, <, =, decrease, increase。",
            id="comparator",
        ),
        pytest.param(
            MINIMAL + "        dealine: 2024-06-30\n",
            "plan.yaml：sections[0].items[0] 中有未知字段“dealine”（可用字段：title, number, "
            "body, lead_units, support_units, deadline, targets），请检查拼写。",
            id="unknown-field",
        ),
        pytest.param(
            MINIMAL + "        number: 1\n      - title: Hire\n        number: 1\n",
            "plan.yaml：sections[0].items[1].number 事项编号 1 重复"
            "（sections[0].items[0] 已使用）。",
            id="duplicate-number",
        ),
        pytest.param(
            MINIMAL.replace("title: Acme 2024 plan", "title: yes"),
            "plan.yaml：plan.title 应为文本，实际是布尔值（true/false）。",
            id="not-text",
        ),
        pytest.param(
            "# only a comment\n",
            "plan.yaml：没有 YAML 数据（文件中只有注释）。",
            id="only-comments",
        ),
        pytest.param(
            MINIMAL + "        targets:\n          - metric: m\n            comparator: >=\n",
            "plan.yaml：YAML 语法错误（第 9 行第 26 列）：expected chomping or indentation "
            "indicators, but found '='。比较符需要加引号，例如 comparator: \">=\"",
            id="unquoted-comparator",
        ),
    ],
)
def test_errors_in_chinese(tmp_path: Path, text: str, chinese: str) -> None:
    with pytest.raises(PlanFormatError) as err:
        parse_yaml_plan(write(tmp_path, text))
    assert err.value.render(Translator("zh-CN")) == chinese


def test_empty_yaml_file(tmp_path: Path) -> None:
    assert error_of(tmp_path, "\n\n") == "plan.yaml: the file is empty"
