"""The progress bulletin (进展情况通报): its period, its figures, and its layout as an official
document (GB/T 9704-2012), read back with python-docx; and, where LibreOffice is installed, the
document converted to PDF and its first page rendered to PNG.

`DUBAN_BULLETIN_PNG=docs/bulletin-page1.png uv run pytest -m slow tests/test_bulletin.py` plays
the demo's fortnight and writes the first page of its June bulletin there (the README's picture).
Without LibreOffice those tests skip and say why; with DUBAN_REQUIRE_LIBREOFFICE=1 they fail.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docx
import pytest
from docx.enum.text import WD_LINE_SPACING
from docx.oxml.ns import qn
from docx.shared import Pt
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import db
from bot.docx_official import Block, build_document, parse_blocks, text_width
from bot.i18n import Translator, UserError
from bot.importer.parse import parse_plan_file
from bot.models import Contact, Plan, ReportStatus
from bot.progress_parser import match_targets, parse_report_text
from bot.services import assignments, audit, plans, reports
from bot.services.bulletin import (
    TABLE_WIDTHS_MM,
    Period,
    build_bulletin,
    current_month,
    parse_month,
    parse_period,
    parse_quarter,
    period_from_options,
    render_bulletin,
    write_bulletin,
)
from bot.services.digest import build_digest
from bot.services.items import item_views
from bot.services.progress import StatusRules
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
CSV = ROOT / "samples" / "assignments.csv"
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2023, 6, 16, 18, 0, tzinfo=TZ)  # the end of the demo's fortnight
JUNE = Period("month", 2023, 6)


def _at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2023, month, day, hour, 0, tzinfo=TZ)


# What the demo's officials say (bot/demo.py), and one figure from May to move on from.
REPORTS = [
    (_at(5, 26), "张敏", "9 40% 华侨实验小学主体封顶，新增学位4000个"),
    (_at(6, 7), "何军", "20 滞后 施工方资质复核未通过，已责令整改"),
    (_at(6, 8), "林芳", "#14 已完成 特殊教育资源中心已挂牌"),
    (_at(6, 9), "张敏", "9 60% 华侨实验小学主体完工，新增学位6500个"),
    (_at(6, 9), "吴刚", "第11项 进度40%"),
    (_at(6, 9), "陈晓", "5 本周召开思政课一体化指导委员会成立会，进度50%"),
    (_at(6, 9), "郑华", "13号 滞后 产教融合数据平台招标延期"),
    (_at(6, 9), "李明", "#1 已完成"),
    (_at(6, 9), "马丽", "21 35% 考核办法征求意见中"),
    (_at(6, 12), "黄伟", "8 50% 年度教育经费预算已下达"),
]


def _report(session: Session, plan: Plan, when: datetime, name: str, text: str) -> None:
    """Record a report as the chat would read it."""
    parsed = parse_report_text(text)
    assert parsed.item_ref is not None, text
    item = plans.find_item(session, plan, parsed.item_ref)
    person = session.exec(select(Contact).where(Contact.name == name)).one()
    reports.record_report(
        session,
        item=item,
        contact=person,
        now=when,
        percent=parsed.percent,
        status=parsed.status,
        text=parsed.note,
        values=match_targets(parsed.numbers, reports.item_targets(session, item)),
    )


def seed_bureau(engine: Engine) -> None:
    """The sample plan, assigned from samples/assignments.csv, and the fortnight's reports."""
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file=SAMPLE.name, actor=audit.CLI_ACTOR
        ).plan
        rows = assignments.read_assignment_csv(session, plan, CSV.read_text(encoding="utf-8"))
        assignments.apply_assignment_csv(session, rows, actor=audit.CLI_ACTOR)
        for when, name, text in REPORTS:
            _report(session, plan, when, name, text)
        session.commit()


@pytest.fixture
def bureau(engine: Engine) -> Engine:
    """The bureau's database on SQLite, then PostgreSQL."""
    seed_bureau(engine)
    return engine


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[Engine]:
    """The bureau's database on SQLite, seeded once for the module's read-only tests."""
    path = tmp_path_factory.mktemp("bureau") / "bureau.db"
    shutil.copy(_sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    seed_bureau(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_bureau(tmp_path: Path, seeded: Engine) -> Iterator[Engine]:
    """A copy of the seeded SQLite database, for a test that changes it."""
    path = tmp_path / "bureau.db"
    with (
        closing(sqlite3.connect(str(seeded.url.database))) as source,
        closing(sqlite3.connect(path)) as copy,
    ):
        source.backup(copy)  # what is committed, write-ahead log included
    engine = db.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _settings(locale: str = "zh-CN") -> Settings:
    return Settings(_env_file=None, locale=locale)  # type: ignore[call-arg]


def _write(engine: Engine, path: Path, *, locale: str = "zh-CN", period: Period = JUNE) -> Path:
    with Session(engine) as session:
        plan = plans.current_plan(session)
        return write_bulletin(session, [plan], period, path, settings=_settings(locale), now=NOW)


def _build(engine: Engine, period: Period = JUNE):  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        return build_bulletin(session, [plan], period, now=NOW, tz=TZ, rules=StatusRules())


def _texts(document: docx.document.Document, style: str | None = None) -> list[str]:
    return [p.text for p in document.paragraphs if style is None or p.style.name == style]


# --- the period -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "number", "start", "end"),
    [
        ("2023-06", "month", 6, date(2023, 6, 1), date(2023, 6, 30)),
        ("2023-6", "month", 6, date(2023, 6, 1), date(2023, 6, 30)),
        ("２０２３－０６", "month", 6, date(2023, 6, 1), date(2023, 6, 30)),
        ("2023年6月", "month", 6, date(2023, 6, 1), date(2023, 6, 30)),
        ("2024-02", "month", 2, date(2024, 2, 1), date(2024, 2, 29)),
        ("2023-12", "month", 12, date(2023, 12, 1), date(2023, 12, 31)),
        ("2023Q2", "quarter", 2, date(2023, 4, 1), date(2023, 6, 30)),
        ("2023-Q4", "quarter", 4, date(2023, 10, 1), date(2023, 12, 31)),
        ("2023-q1", "quarter", 1, date(2023, 1, 1), date(2023, 3, 31)),
        ("2023年第三季度", "quarter", 3, date(2023, 7, 1), date(2023, 9, 30)),
    ],
)
def test_a_period_is_read_as_people_write_it(
    text: str, kind: str, number: int, start: date, end: date
) -> None:
    period = parse_period(text)
    assert (period.kind, period.year, period.number) == (kind, start.year, number)
    assert (period.start, period.end) == (start, end)
    assert (parse_month if kind == "month" else parse_quarter)(text) == period


@pytest.mark.parametrize(
    ("parse", "text", "key", "says"),
    [
        (parse_month, "2023-13", "bulletin.bad_month", ["“2023-13”", "没有 13 月", "2023-06"]),
        (parse_month, "2023-00", "bulletin.bad_month", ["没有 0 月", "2023-06"]),
        (parse_month, "June", "bulletin.not_month", ["“June”", "YYYY-MM", "2023-06"]),
        (parse_month, "2023Q2", "bulletin.not_month", ["2023-06"]),
        (parse_month, "0000-06", "bulletin.not_month", ["2023-06"]),
        (parse_quarter, "2023Q5", "bulletin.bad_quarter", ["“2023Q5”", "Q1 至 Q4", "2023-Q2"]),
        (parse_quarter, "2023-06", "bulletin.not_quarter", ["YYYY-Qn", "2023-Q2"]),
        (parse_period, "2023-W23", "bulletin.not_period", ["2023-06", "2023-Q2"]),
        (parse_period, "", "bulletin.not_period", ["2023-06", "2023-Q2"]),
        (parse_period, "2023-13", "bulletin.bad_month", ["没有 13 月"]),
    ],
)
def test_a_bad_period_says_what_is_wrong_and_gives_an_example(
    parse, text: str, key: str, says: list[str]
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError) as caught:
        parse(text)
    assert caught.value.key == key
    message = caught.value.render(Translator("zh-CN"))
    assert all(part in message for part in says), message
    english = caught.value.render(Translator("en"))
    assert "e.g." in english and not re.search(r"[\u4e00-\u9fff]", english.replace(text, ""))


def test_the_options_give_one_period() -> None:
    assert period_from_options("2023-06", None, now=NOW, tz=TZ) == JUNE
    assert period_from_options(None, "2023-Q2", now=NOW, tz=TZ) == Period("quarter", 2023, 2)
    assert period_from_options(None, None, now=NOW, tz=TZ) == current_month(NOW, TZ) == JUNE
    # the month is the plan's: 1 July 01:00 in Shanghai is still 30 June in UTC
    assert current_month(datetime(2023, 7, 1, 1, tzinfo=TZ), TZ) == Period("month", 2023, 7)
    with pytest.raises(UserError) as caught:
        period_from_options("2023-06", "2023-Q2", now=NOW, tz=TZ)
    assert caught.value.key == "bulletin.cli_month_and_quarter"


def test_periods_are_named_in_each_locale() -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    assert JUNE.label(zh) == "2023年6月" and JUNE.label(en) == "June 2023"
    quarter = Period("quarter", 2023, 2)
    assert quarter.label(zh) == "2023年第二季度" and quarter.label(en) == "Q2 2023"
    assert (JUNE.key, quarter.key) == ("2023-06", "2023-Q2")


def test_a_period_that_has_not_begun_has_no_bulletin(bureau: Engine) -> None:
    with pytest.raises(UserError) as caught:
        _build(bureau, Period("month", 2023, 7))
    assert caught.value.key == "bulletin.future"
    assert "2023-07" in caught.value.render(Translator("zh-CN"))


# --- the figures ----------------------------------------------------------------------------


def test_the_figures_are_the_digests_and_item_views(bureau: Engine) -> None:
    bulletin = _build(bureau)
    with Session(bureau, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        views = item_views(session, plan, now=NOW, tz=TZ, rules=StatusRules(), as_of=NOW)
        digest = build_digest(session, plan, now=NOW, tz=TZ, rules=StatusRules())
    part = bulletin.parts[0]
    assert bulletin.as_of == NOW  # June has not ended: as of now
    assert [v.item.number for v in part.views] == [v.item.number for v in views]
    assert [(v.status, v.percent) for v in part.views] == [(v.status, v.percent) for v in views]
    assert part.counts == digest.counts and part.completion_rate == digest.completion_rate
    assert sum(part.counts.values()) == len(part.views) == 27
    # June's reports: nine, the one from May is not June's
    assert part.reports == 9
    # finished this month: items 1 and 14; moved ahead of 序时进度: 5, 8, 11, 21 (9 is behind)
    assert [v.item.number for v in part.finished] == [1, 14]
    advances = {a.view.item.number: a for a in part.advances}
    assert set(advances) == {5, 8, 11, 21}
    assert all(a.lead == a.view.percent - (a.view.verdict.expected or 0) for a in part.advances)
    assert [a.lead for a in part.advances] == sorted((a.lead for a in part.advances), reverse=True)
    # behind: 20 past its deadline, 13 reported delayed by its owner
    assert {v.item.number: v.verdict.why.key for v in part.red if v.verdict.why} == {
        13: "why.delayed",
        20: "why.overdue",
    }
    places = next(s for v, s in part.targets if v.item.number == 9 and s.value is not None)
    assert (places.value, places.share) == (6500, 65)


def test_an_earlier_month_is_seen_as_it_was(bureau: Engine) -> None:
    may = _build(bureau, Period("month", 2023, 5)).parts[0]
    assert may.reports == 1 and not may.finished
    item9 = next(v for v in may.views if v.item.number == 9)
    assert item9.percent == 40  # June's 60% had not been said yet


def test_several_plans_are_reported_plan_by_plan(bureau: Engine, tmp_path: Path) -> None:
    second = tmp_path / "shishi.yaml"
    second.write_text(
        "plan:\n  title: 2023年教育民生实事\n  issuer: 江门市教育局\n"
        "sections:\n  - title: 办好民生实事\n    items:\n"
        "      - title: 完成教室照明改造\n        deadline: 2023-12-31\n"
        "        lead_units: [思政体卫艺科]\n"
        "      - title: 新建公办幼儿园\n        lead_units: [基础教育科]\n",
        encoding="utf-8",
    )
    with Session(bureau, expire_on_commit=False) as session:
        first = plans.current_plan(session)
        other = plans.import_plan(
            session, parse_plan_file(second), source_file=second.name, actor=audit.CLI_ACTOR
        ).plan
        session.commit()
        path = write_bulletin(
            session, [first, other], JUNE, tmp_path / "b.docx", settings=_settings(), now=NOW
        )
        bulletin = build_bulletin(
            session, [first, other], JUNE, now=NOW, tz=TZ, rules=StatusRules()
        )
    assert len(bulletin.views) == 29 and bulletin.counts["none"] == sum(
        p.counts["none"] for p in bulletin.parts
    )
    document = docx.Document(str(path))
    assert _texts(document, "Title")[0] == "关于2023年6月重点工作进展情况的通报"
    parts = _texts(document, "Heading 2")
    assert parts[:2] == ["（一）《江门市教育局2023年工作要点》", "（二）《2023年教育民生实事》"]
    # the attached table: a row naming each plan before its items
    table = document.tables[0]
    firsts = [row.cells[0].text for row in table.rows]
    assert firsts[1] == "一、江门市教育局2023年工作要点" and firsts[2] == "1"
    assert firsts[29] == "二、2023年教育民生实事" and firsts[30:] == ["1", "2"]
    assert len(table.rows) == 1 + 2 + 29


# --- the document ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def june_file(seeded: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """June's bulletin of the seeded bureau, written once."""
    return _write(seeded, tmp_path_factory.mktemp("june") / "通报.docx")


@pytest.fixture
def june(june_file: Path) -> docx.document.Document:
    """June's bulletin, read back."""
    return docx.Document(str(june_file))


def test_the_page_is_a4_with_the_standards_margins(june: docx.document.Document) -> None:
    section = june.sections[0]
    page = (section.page_width, section.page_height)
    margins = (section.top_margin, section.bottom_margin, section.left_margin, section.right_margin)
    assert [round(length.mm, 1) for length in page] == [210, 297]  # A4, to the twip
    assert [round(length.mm, 1) for length in margins] == [37, 35, 28, 26]
    body = june.styles["Body Text"].paragraph_format
    assert body.line_spacing_rule == WD_LINE_SPACING.EXACTLY and body.line_spacing == Pt(28.95)
    assert body.first_line_indent == Pt(32)  # two characters of 16 pt


def _east_asian_font(style) -> str:  # type: ignore[no-untyped-def]
    fonts = style.element.find(qn("w:rPr")).find(qn("w:rFonts"))
    assert fonts.get(qn("w:asciiTheme")) is None and fonts.get(qn("w:eastAsiaTheme")) is None
    return str(fonts.get(qn("w:eastAsia")))


def test_the_fonts_are_named_as_the_standard_names_them(june: docx.document.Document) -> None:
    styles = june.styles
    expected = {
        "Title": ("方正小标宋简体", 22),
        "Body Text": ("仿宋_GB2312", 16),
        "Heading 1": ("黑体", 16),
        "Heading 2": ("楷体_GB2312", 16),
        "Heading 3": ("仿宋_GB2312", 16),
        "Footer": ("宋体", 14),  # the page number
    }
    for name, (font, size) in expected.items():
        assert _east_asian_font(styles[name]) == font, name
        assert styles[name].font.size == Pt(size), name
    assert styles["Body Text"].font.name == "Times New Roman"  # digits and Latin letters
    # the headings are headings (Word's navigation pane, outline) in black, not theme blue
    assert styles["Heading 1"].font.color.rgb is None
    # every paragraph of the body is in one of these styles, none in a font of its own
    used = {p.style.name for p in june.paragraphs}
    assert used <= {*expected, "Normal", "Subtitle", "Attachment Label"}
    assert not [r for p in june.paragraphs for r in p.runs if r.font.name]
    # the document defaults name the body font too, and Chinese as the East Asian language
    defaults = june.styles.element.find(qn("w:docDefaults"))
    fonts = defaults.find(qn("w:rPrDefault")).find(qn("w:rPr")).find(qn("w:rFonts"))
    assert fonts.get(qn("w:eastAsia")) == "仿宋_GB2312"


def test_the_font_table_offers_substitutes(june: docx.document.Document) -> None:
    part = next(p for p in june.part.package.iter_parts() if p.partname == "/word/fontTable.xml")
    xml = part.blob.decode("utf-8")
    assert re.search(r'w:name="仿宋_GB2312"><w:altName w:val="仿宋"/>', xml)
    assert re.search(r'w:name="方正小标宋简体"><w:altName w:val="宋体"/>', xml)


def test_the_title_and_the_headings_come_in_order(june: docx.document.Document) -> None:
    assert _texts(june, "Title")[:2] == [
        "关于《江门市教育局2023年工作要点》",
        "2023年6月进展情况的通报",
    ]
    assert _texts(june, "Subtitle")[0] == "（截至2023年6月16日）"
    assert _texts(june, "Heading 1") == [
        "一、总体情况",
        "二、进展较快的事项",
        "三、滞后事项及原因",
        "四、量化目标完成情况",
        "五、下一步工作要求",
    ]
    texts = _texts(june)
    assert texts.index("各责任单位：") < texts.index("一、总体情况")
    # the closing: 附件说明, then 署名 and 成文日期 on the right, then the attachment
    closing = [
        t for t in texts if t.startswith("附件") or t in ("江门市教育局办公室", "2023年6月16日")
    ]
    assert closing == ["附件：事项进展情况表", "江门市教育局办公室", "2023年6月16日", "附件"]
    assert _texts(june, "Attachment Label") == ["附件"]
    assert "事项进展情况表" in _texts(june, "Title")


def test_the_words_say_the_figures(june: docx.document.Document, seeded: Engine) -> None:
    part = _build(seeded).parts[0]
    counts, body = part.counts, "\n".join(_texts(june, "Body Text"))
    assert (
        f"共27项工作任务，已完成{counts['done']}项，完成率{part.completion_rate}%；"
        f"正常推进{counts['green']}项，预警{counts['amber']}项，滞后{counts['red']}项，"
        f"尚无报送{counts['none']}项。"
    ) in body
    assert "2023年6月共收到进展报送9条，新完成2项（第1项、第14项）。" in body
    # the reasons in the officials' own words
    assert "第20项“做好学校后勤保障工作”（安全管理科）：已过完成时限（2023-06-01）。" in body
    assert "据报：施工方资质复核未通过，已责令整改。" in body
    assert "据报：产教融合数据平台招标延期。" in body
    # moved on since May, and ahead of the time elapsed
    item5 = next(a for a in part.advances if a.view.item.number == 5)
    assert f"进度达到50%，快于序时进度{item5.lead}个百分点。" in body
    # targets against their values, and where the pace since May leads by the deadline
    places = next(s for v, s in part.targets if v.item.number == 9 and s.value is not None)
    assert places.projection is not None
    assert (
        f"第9项“新增学位超1万个”：已报6,500个，为目标（10,000个）的65%，"
        f"按此进度到期约{places.projection:,.0f}个。"
    ) in body


def test_the_attached_table_lists_every_item_as_item_views_has_it(
    june: docx.document.Document, seeded: Engine
) -> None:
    with Session(seeded, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        views = item_views(session, plan, now=NOW, tz=TZ, rules=StatusRules(), as_of=NOW)
    t = Translator("zh-CN")
    (table,) = june.tables
    header, *rows = [[cell.text for cell in row.cells] for row in table.rows]
    assert header == ["序号", "工作任务", "责任单位", "完成时限", "进度", "状态", "最新进展"]
    assert len(rows) == len(views) == 27
    for row, view in zip(rows, views, strict=True):
        assert row[0] == str(view.item.number) and row[1] == view.item.title
        assert row[3] == (view.deadline.isoformat() if view.deadline else "未设定")
        assert row[4] == (f"{view.percent}%" if view.percent is not None else "—")
        assert row[5] == t(f"status_label.{view.status}")
    by_number = {row[0]: row for row in rows}
    assert by_number["20"][6] == "施工方资质复核未通过，已责令整改（6月7日）"
    assert by_number["1"][6] == "6月9日报送"  # "#1 已完成" says no more
    # the header row repeats on every page; the columns fill the text block's width exactly
    assert table.rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None
    assert sum(TABLE_WIDTHS_MM) == 156
    assert [round(c.width.mm) for c in table.columns] == [round(w) for w in TABLE_WIDTHS_MM]


def test_page_numbers_are_a_page_field_between_dashes(june: docx.document.Document) -> None:
    assert june.settings.odd_and_even_pages_header_footer
    section = june.sections[0]
    for footer, alignment in ((section.footer, "right"), (section.even_page_footer, "left")):
        (paragraph,) = footer.paragraphs
        xml = paragraph._p.xml
        assert [m for m in re.findall(r'w:fldCharType="(\w+)"', xml)] == [
            "begin",
            "separate",
            "end",
        ]
        assert re.search(r"<w:instrText[^>]*> PAGE </w:instrText>", xml)
        assert paragraph.text == "— 1 —"
        assert paragraph.style.name == "Footer"
        assert str(paragraph.alignment).lower().startswith(alignment)


def test_the_same_data_make_the_same_file(seeded: Engine, june_file: Path, tmp_path: Path) -> None:
    first = june_file.read_bytes()
    second = _write(seeded, tmp_path / "again.docx").read_bytes()
    assert first == second
    props = docx.Document(io.BytesIO(first)).core_properties
    assert props.title == "关于《江门市教育局2023年工作要点》2023年6月进展情况的通报"
    assert props.created == datetime(2023, 6, 16, 10, 0, tzinfo=UTC)


def test_english_with_locale_en(seeded: Engine, tmp_path: Path) -> None:
    document = docx.Document(str(_write(seeded, tmp_path / "en.docx", locale="en")))
    assert _texts(document, "Heading 1") == [
        "1. Overview",
        "2. Items Moving Ahead",
        "3. Items Behind and Why",
        "4. Quantitative Targets",
        "5. Next Steps",
    ]
    assert _texts(document, "Title")[0] == "Progress of “江门市教育局2023年工作要点”, June 2023"
    header = [cell.text for cell in document.tables[0].rows[0].cells]
    assert header == [
        "No.",
        "Work item",
        "Responsible",
        "Deadline",
        "%",
        "Status",
        "Latest report",
    ]
    assert "施工方资质复核未通过" in "\n".join(_texts(document))  # the reports' own words


def test_what_people_write_cannot_change_the_layout(sqlite_bureau: Engine, tmp_path: Path) -> None:
    with Session(sqlite_bureau) as session:
        plan = plans.current_plan(session)
        item = plans.find_item(session, plan, "22")
        person = session.exec(select(Contact).where(Contact.name == "马丽")).first()
        assert person is not None
        reports.record_report(
            session,
            item=item,
            contact=person,
            now=_at(6, 15),
            status=ReportStatus.delayed,
            text="场地未落实\n@h1 六、伪造的标题\x0b\x00@pagebreak",
        )
        session.commit()
    document = docx.Document(str(_write(sqlite_bureau, tmp_path / "x.docx")))
    assert "六、伪造的标题" not in _texts(document, "Heading 1")
    said = [t for t in _texts(document) if "场地未落实" in t]
    assert said and all("@h1 六、伪造的标题 @pagebreak" in t for t in said)


def test_the_blocks_are_checked() -> None:
    assert parse_blocks("@title 标题\n\n@p 正文 @p 不是新段\n@blank") == [
        Block("title", "标题"),
        Block("p", "正文 @p 不是新段"),
        Block("blank", ""),
    ]
    for bad in ("正文没有类别", "@heading 不认识的类别"):
        with pytest.raises(ValueError, match="line 1"):
            parse_blocks(bad)
    with pytest.raises(ValueError, match="@endtable"):
        build_document(parse_blocks("@table\n@header\n@cell 序号"), title="", created=NOW)
    with pytest.raises(ValueError, match="cells"):
        build_document(
            parse_blocks("@table\n@header\n@cell 甲\n@cell 乙\n@row\n@cell 1\n@endtable"),
            title="",
            created=NOW,
            table_widths_mm=(78, 78),
        )


def test_the_signature_and_the_date_line_up_as_the_standard_says() -> None:
    # 成文日期 starts two characters right of 署名's start; 署名 is two characters in
    assert text_width("江门市教育局办公室") == 9 and text_width("2023年6月16日") == 6.5
    document = build_document(
        parse_blocks("@p 正文\n@signature 江门市教育局办公室\n@date 2023年6月16日"),
        title="",
        created=NOW,
    )
    body, signature, day = document.paragraphs
    assert signature.paragraph_format.right_indent == Pt(32)
    assert day.paragraph_format.right_indent == Pt(2.5 * 16)
    # the closing keeps to the page of the body's last paragraph
    assert body.paragraph_format.keep_with_next and signature.paragraph_format.keep_with_next


def test_every_template_renders(seeded: Engine) -> None:
    bulletin = _build(seeded)
    for locale in ("zh-CN", "en"):
        blocks = render_bulletin(bulletin, locale)
        kinds = [b.kind for b in blocks]
        assert kinds[0] == "title" and kinds.count("table") == kinds.count("endtable") == 1
        assert kinds.count("row") == 27


# --- LibreOffice: the document as it prints ------------------------------------------------


@pytest.fixture
def soffice() -> str:
    """LibreOffice's command, or a skip that says how to install it (a failure in CI)."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        reason = (
            "LibreOffice is not installed (Debian: apt-get install libreoffice-writer-nogui "
            "fonts-noto-cjk)"
        )
        if os.environ.get("DUBAN_REQUIRE_LIBREOFFICE") == "1":
            pytest.fail(f"{reason} and DUBAN_REQUIRE_LIBREOFFICE=1")
        pytest.skip(f"{reason}; CI installs it")
    return found


# The official fonts are not on Linux: show them as the nearest Noto CJK faces (serif for 宋体,
# 仿宋 and 楷体, bold serif for 小标宋, sans for 黑体). The document still names the official ones.
SUBSTITUTES = {
    "仿宋_GB2312": "Noto Serif CJK SC",
    "楷体_GB2312": "Noto Serif CJK SC",
    "宋体": "Noto Serif CJK SC",
    "黑体": "Noto Sans CJK SC",
}
_ALIASES = "".join(
    f'  <alias binding="same"><family>{name}</family>'
    f"<prefer><family>{face}</family></prefer></alias>\n"
    for name, face in SUBSTITUTES.items()
)
FONTS_CONF = f"""<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <match target="pattern">
    <test name="family"><string>方正小标宋简体</string></test>
    <edit name="family" mode="assign" binding="strong"><string>Noto Serif CJK SC</string></edit>
    <edit name="weight" mode="assign" binding="strong"><const>bold</const></edit>
  </match>
{_ALIASES}</fontconfig>
"""
CJK_FONT = re.compile(
    rb"/BaseFont\s*/[A-Z]{6}\+([A-Za-z0-9_-]*(?:CJK|Han|WenQuanYi|Fallback|UKai|UMing)[A-Za-z0-9_-]*)"
)


def render_page_one(soffice: str, document: Path, out: Path) -> tuple[Path, Path]:
    """The document as PDF (LibreOffice) and its first page as PNG (pdftoppm, else LibreOffice)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(out)}
    if Path("/etc/fonts/fonts.conf").is_file():
        conf = out / "fonts.conf"
        conf.write_text(FONTS_CONF, encoding="utf-8")
        env["FONTCONFIG_FILE"] = str(conf)
    profile = f"-env:UserInstallation={(out / 'libreoffice-profile').as_uri()}"

    def convert(to: str, source: Path) -> None:
        subprocess.run(
            [soffice, profile, "--headless", "--convert-to", to, "--outdir", str(out), str(source)],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )

    convert("pdf", document)
    pdf = out / f"{document.stem}.pdf"
    png = out / f"{document.stem}-page1.png"
    if shutil.which("pdftoppm"):
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "110",
                "-f",
                "1",
                "-l",
                "1",
                "-singlefile",
                str(pdf),
                str(png.with_suffix("")),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    else:  # LibreOffice's own PNG export is the first page
        convert("png", document)
        (out / f"{document.stem}.png").replace(png)
    return pdf, png


def _check_rendering(pdf: Path, png: Path) -> None:
    """A4 pages, Chinese drawn in a CJK font (not empty boxes), a first page with a title."""
    from PIL import Image

    data = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert boxes, "no page in the PDF"
    assert all(abs(float(w) - 595.3) < 1 and abs(float(h) - 841.9) < 1 for w, h in boxes)
    assert len(boxes) >= 2  # the body, then the attached table on a page of its own
    fonts = {m.decode() for m in CJK_FONT.findall(data)}
    assert fonts, (
        "the Chinese text is drawn in no CJK font (it shows as empty boxes): install one, "
        "e.g. apt-get install fonts-noto-cjk"
    )
    image = Image.open(png).convert("L")
    width, height = image.size
    assert abs(height / width - 297 / 210) < 0.02  # a portrait A4 page

    def ink(top: float, bottom: float) -> float:
        """The share of dark pixels in a band of the page (fractions of its height)."""
        band = image.crop((0, int(top * height), width, int(bottom * height)))
        dark = sum(band.histogram()[:128])
        return dark / (band.width * band.height)

    assert ink(0, 0.11) < 0.001  # the top margin (37 mm of 297) is empty
    assert ink(0.12, 0.22) > 0.01  # the title is there, in black
    assert ink(0.9, 0.95) > 0  # the page number, under the text block


def test_libreoffice_prints_it_on_a4_in_chinese(
    soffice: str, june_file: Path, tmp_path: Path
) -> None:
    pdf, png = render_page_one(soffice, june_file, tmp_path / "rendered")
    _check_rendering(pdf, png)


@pytest.mark.slow
def test_the_demos_june_bulletin_page_one(soffice: str, tmp_path: Path) -> None:
    """The demo's fortnight, its June bulletin, page 1 as PNG (the README's picture)."""
    from bot.demo import demo_settings, play

    settings = demo_settings(_settings(), tmp_path / "demo")
    asyncio.run(
        play(
            settings,
            out=io.StringIO(),
            colors=False,
            csv=db.sample_path("assignments.csv"),
            sample=db.sample_path("jiangmen-edu-2023-workpoints.txt"),
        )
    )
    engine = db.make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            plan = plans.current_plan(session)
            document = write_bulletin(
                session, [plan], JUNE, tmp_path / "进展情况通报.docx", settings=settings, now=NOW
            )
    finally:
        engine.dispose()
    pdf, png = render_page_one(soffice, document, tmp_path / "rendered")
    _check_rendering(pdf, png)
    target = os.environ.get("DUBAN_BULLETIN_PNG")
    if target:
        from PIL import Image, ImageOps

        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with Image.open(png) as page:  # a grey edge: the white page on a white README
            ImageOps.expand(page.convert("RGB"), border=1, fill="#9e9e9e").save(target)
