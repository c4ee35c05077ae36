"""The weekly digest: what it says, in every channel's markup, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.chat import ChatCore
from bot.events import IncomingMessage, split_text, utf8_size
from bot.i18n import Translator, UserError
from bot.importer.parse import parse_plan_file
from bot.models import Contact, Report, ReportStatus, Target, WorkItem
from bot.services import assignments, audit, contacts, plans, reports
from bot.services.digest import build_digest, digest_json, parse_week
from bot.services.items import item_json, item_views
from bot.services.ledger_export import export_ledger
from bot.services.progress import StatusRules
from bot.settings import Settings
from bot.templating import render_digest
from handlers.registry import build_router
from tests.harness import seed

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2023, 6, 8, 10, 0, tzinfo=TZ)  # Thursday of 2023-W23 (5 to 11 June)


def _at(day: int, month: int = 6) -> datetime:
    return datetime(2023, month, day, 10, 0, tzinfo=TZ)


def _report(session: Session, number: int, name: str, when: datetime, text: str) -> None:
    from bot.progress_parser import match_targets, parse_report_text

    plan = plans.current_plan(session)
    item = plans.find_item(session, plan, str(number))
    person = session.exec(select(Contact).where(Contact.name == name)).one()
    parsed = parse_report_text(text)
    values = match_targets(parsed.numbers, reports.item_targets(session, item))
    reports.record_report(
        session,
        item=item,
        contact=person,
        now=when,
        percent=parsed.percent,
        status=parsed.status,
        text=parsed.note,
        values=values,
    )


@pytest.fixture
def scenario(engine: Engine) -> Engine:
    """The sample plan, the cast, and a few weeks of reports up to 2023-W23."""
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        item9 = plans.find_item(session, plan, "9")
        places = next(t for t in reports.item_targets(session, item9) if "新增学位" in t.metric)
        places.additive = True  # one figure per county, summed
        wang = contacts.add_contact(
            session,
            name="王五",
            unit="蓬江区教育局",
            role=contacts.Role.official,
            actor=audit.CLI_ACTOR,
        )
        assignments.assign(session, item=item9, contact=wang, actor=audit.CLI_ACTOR, now=_at(1))
        _report(session, 9, "张三", _at(30, 5), "40% 新增学位4000个")
        _report(session, 9, "张三", _at(6), "55% 新增学位6500个")
        _report(session, 9, "王五", _at(7), "新增学位3000个，进度50%")
        _report(session, 22, "李四", _at(25, 5), "30% 已启动")
        _report(session, 22, "李四", _at(7), "滞后 原因<script>alert(1)</script>")
        session.commit()
    return engine


def _digest(engine: Engine, week: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        return build_digest(session, plan, now=NOW, tz=TZ, rules=StatusRules(), week=week)


def test_the_digest_says_what_leaders_need(scenario: Engine) -> None:
    d = _digest(scenario)
    assert (d.year, d.week, d.start.isoformat(), d.end.isoformat()) == (
        2023,
        23,
        "2023-06-05",
        "2023-06-11",
    )
    assert sum(d.counts.values()) == 27
    # red first: item 22 was reported delayed by its owner
    assert d.views[0].item.number == 22 and d.views[0].status == "red"
    assert d.views[0].verdict.why is not None and d.views[0].verdict.why.key == "why.delayed"
    item9 = next(v for v in d.views if v.item.number == 9)
    assert item9.status == "green" and item9.percent == 50  # the newest report on the item
    # the additive target sums each reporter's latest value
    places = next(s for s in item9.targets if "新增学位" in s.target.metric)
    assert (places.value, places.share, places.reporters) == (9500, 95, 2)
    # 4,000 to 9,500 in eight days, carried on to the end of the year, is some 152,000:
    # more than ten times the target, so it is left out rather than shown
    assert places.projection is None
    # changes this week: three reports, and item 22 went from amber... to red
    assert [r.item for r in d.reports] == [9, 9, 22]
    assert any(c.view.item.number == 22 and c.after == "red" for c in d.changes)
    # who has not reported this week: owners of open items, not the ones who did
    assert "陈五" in d.missing and "张三" not in d.missing and "李四" not in d.missing
    assert [s.number for s in d.sections] == [1, 2, 3, 4, 5, 6]
    assert sum(s.items for s in d.sections) == 27


def test_an_earlier_week_is_seen_as_it_was(scenario: Engine) -> None:
    d = _digest(scenario, week=(2023, 22))
    item9 = next(v for v in d.views if v.item.number == 9)
    assert item9.percent == 40
    places = next(s for s in item9.targets if "新增学位" in s.target.metric)
    assert places.value == 4000 and places.projection is None  # one report: no pace yet
    assert [r.item for r in d.reports] == [9]  # 29 May to 4 June (item 22 reported on 25 May)


def test_json_shape(scenario: Engine) -> None:
    data = digest_json(_digest(scenario), Translator("zh-CN"))
    assert data["plan"] == "江门市教育局2023年工作要点" and data["week"] == "2023-W23"
    assert set(data["counts"]) >= {"green", "amber", "red", "done"}
    assert set(data["items"][0]) >= {"number", "title", "status", "percent", "why", "owners"}
    item22 = next(i for i in data["items"] if i["number"] == 22)
    assert item22["status"] == "red" and item22["why"] == "责任人报告滞后"
    assert "陈五" in data["missing_reports"]
    target = next(t for t in data["targets"] if t["item"] == 9 and t["target"] == 10000)
    assert (target["value"], target["share"]) == (9500, 95)
    kinds = {c["kind"] for c in data["changes"]}
    assert kinds == {"report", "status"}


def test_rendered_in_every_markup(scenario: Engine) -> None:
    d = _digest(scenario)
    text = render_digest(d, "text", "zh-CN")
    assert (
        "《江门市教育局2023年工作要点》督办周报" in text
        and "2023年第23周（6月5日—6月11日）" in text
    )
    assert text.index("滞后事项") < text.index("预警事项") < text.index("本周变化")
    assert "第9项 新增学位：9,500 / 10,000 个（95%）" in text
    assert "陈五" in text.split("本周未报送")[1]
    html = render_digest(d, "telegram", "zh-CN")
    assert "<b>概况</b>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # user text is escaped
    markdown = render_digest(d, "wecom", "zh-CN")
    assert "### 🔴 滞后事项（" in markdown and "**概况**" in markdown
    english = render_digest(d, "text", "en")
    assert "Weekly digest: 江门市教育局2023年工作要点" in english and "Behind (" in english


def test_an_empty_week(engine: Engine) -> None:
    seed(engine)
    d = _digest(engine)
    assert d.reports == [] and d.changes == []
    text = render_digest(d, "text", "zh-CN")
    assert "本周没有新的进展报送" in text
    assert render_digest(d, "wecom", "en").count("No new reports this week") == 1


def _yaml_plan(tmp_path: Path, items: int, *, targets: bool) -> Path:
    lines = ["plan:", "  title: 测试计划", "  issued_on: 2023-01-01", "sections:"]
    for s in range(1, 5):
        lines += [f"  - title: 第{s}板块", "    items:"]
        for i in range(items // 4):
            lines += [f"      - title: 事项<{s}-{i}>&推进", "        deadline: 2023-12-31"]
            if not targets:
                lines.append("        targets: []")
            else:
                lines.append("        body: 新建学校5所。")
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import(engine: Engine, path: Path) -> None:
    with Session(engine) as session:
        plans.import_plan(session, parse_plan_file(path), source_file=path.name, actor="cli")
        session.commit()


def test_a_plan_without_targets(engine: Engine, tmp_path: Path) -> None:
    _import(engine, _yaml_plan(tmp_path, 8, targets=False))
    d = _digest(engine)
    assert d.targets == []
    for fmt in ("text", "telegram", "wecom"):
        rendered = render_digest(d, fmt, "zh-CN")
        assert "量化目标" not in rendered and "各板块进度" in rendered


def test_a_plan_of_over_a_hundred_items_splits_cleanly(engine: Engine, tmp_path: Path) -> None:
    _import(engine, _yaml_plan(tmp_path, 120, targets=True))
    d = _digest(engine)
    assert len(d.views) == 120 and len(d.targets) == 120
    html = render_digest(d, "telegram", "zh-CN")
    assert "事项&lt;1-0&gt;&amp;推进" in html
    parts = split_text(html, 4096)
    assert len(parts) > 1
    for part in parts:  # every Telegram part is well-formed HTML on its own
        assert len(part) <= 4096 and part.count("<b>") == part.count("</b>")
    markdown = render_digest(d, "wecom", "zh-CN")
    assert all(utf8_size(p) <= 2048 for p in split_text(markdown, 2048, size=utf8_size))


@pytest.mark.parametrize("bad", ["2023-23", "2023-W54", "W23", "next week"])
def test_bad_week(bad: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_week(bad)
    assert "2023-W23" in caught.value.render(Translator("zh-CN"))


def test_a_week_that_has_not_begun(scenario: Engine) -> None:
    with pytest.raises(UserError, match="not begun"):
        _digest(scenario, week=(2023, 30))


def test_a_correction_keeps_the_earlier_report(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _report(session, 9, "张三", _at(6), "50%")
        _report(session, 9, "张三", _at(6) + timedelta(minutes=3), "60%")
        session.commit()
        from bot.models import Report

        first, second = session.exec(select(Report).order_by(Report.id)).all()  # type: ignore[arg-type]
        assert first.superseded_by_id == second.id and second.superseded_by_id is None
        # taking the correction back restores what it replaced
        person = session.exec(select(Contact).where(Contact.name == "张三")).one()
        reports.undo_last(session, person, _at(6) + timedelta(minutes=5))
        session.commit()
        session.refresh(first)
        assert first.superseded_by_id is None


@pytest.mark.parametrize(("minutes", "corrects"), [(10, True), (11, False)])
def test_only_a_report_within_the_undo_window_corrects(
    engine: Engine, minutes: int, corrects: bool
) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _report(session, 9, "李四", _at(6), "40%")  # someone else's: never superseded
        _report(session, 9, "张三", _at(6), "50%")
        _report(session, 9, "张三", _at(6) + timedelta(minutes=minutes), "60%")
        session.commit()
        from bot.models import Report

        other, first, second = session.exec(select(Report).order_by(Report.id)).all()  # type: ignore[arg-type]
        assert other.superseded_by_id is None and second.superseded_by_id is None
        assert first.superseded_by_id == (second.id if corrects else None)


def test_target_rows_keep_their_additive_flag_on_reimport(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as session:
        target = session.exec(select(Target).where(Target.metric == "新增学位")).one()
        target.additive = True
        session.commit()
    from tests.harness import SAMPLE

    _import(engine, SAMPLE)
    with Session(engine) as session:
        assert session.exec(select(Target).where(Target.metric == "新增学位")).one().additive


# --- one latest figure everywhere, times in the plan's zone, deadlines not set ----------------


def _record(
    session: Session,
    number: int,
    name: str,
    when: datetime,
    percent: int | None = None,
    status: ReportStatus | None = None,
    text: str = "",
    *,
    by: str | None = None,
    value: float | None = None,
) -> Report:
    """A report as the chat or the CLI records it (by: the admin entering it for name)."""
    plan = plans.current_plan(session)
    item = plans.find_item(session, plan, str(number))
    person = session.exec(select(Contact).where(Contact.name == name)).one()
    admin = session.exec(select(Contact).where(Contact.name == by)).one() if by else None
    targets = reports.item_targets(session, item)
    places = [t for t in targets if t.metric == "新增学位"]
    return reports.record_report(
        session,
        item=item,
        contact=person,
        now=when,
        percent=percent,
        status=status,
        text=text,
        values=[(places[0], value)] if value is not None else [],
        source="cli" if by else "chat",
        entered_by=admin,
    )


_UPDATES = count(1)


def _settings(locale: str = "zh-CN") -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="sqlite://",
        timezone="Asia/Shanghai",
        locale=locale,  # type: ignore[arg-type]
    )


def _ask(engine: Engine, name: str, text: str, *, locale: str = "zh-CN") -> str:
    """What the bot answers `name` on the console channel, as of NOW."""
    core = ChatCore(engine, _settings(locale), build_router(), clock=lambda: NOW)
    try:
        event = IncomingMessage(
            platform="console",
            chat_id=name,
            sender_id=name,
            update_id=str(next(_UPDATES)),
            text=text,
        )
        result = core.process(event)
    finally:
        core.close()
    assert result is not None
    return "\n".join(out.text for out in result[0])


def _ledger_row(engine: Engine, tmp_path: Path, number: int) -> list[object]:
    import openpyxl

    with Session(engine) as session:
        plan = plans.current_plan(session)
        path = export_ledger(session, plan, tmp_path / "台账.xlsx", settings=_settings(), now=NOW)
    sheet = openpyxl.load_workbook(path)["台账"]
    return next(
        [c.value for c in row] for row in sheet.iter_rows(min_row=4) if row[0].value == number
    )


def test_the_digest_status_my_and_the_ledger_show_one_latest_figure(
    engine: Engine, tmp_path: Path
) -> None:
    """The owner said 85%, then an admin said 50% in chat: whoever gave it, the newest percent
    is the item's figure everywhere; a later report without a percent does not change it."""
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 9, "张三", _at(5), 85, text="主体完工")
        _record(session, 9, "赵主任", _at(6), 50)
        note = _record(session, 9, "张三", _at(7), text="已召开推进会")
        session.commit()
        assert note.percent is None and note.status is None  # what was said, no more
        assert session.get(Report, note.id).percent is None  # type: ignore[union-attr]
        item9 = plans.find_item(session, plans.current_plan(session), "9")
        assert reports.latest_known_percent(session, item9.id or 0) == 50
        plan = plans.current_plan(session)
        view = next(
            v
            for v in item_views(session, plan, now=NOW, tz=TZ, rules=StatusRules())
            if v.item.number == 9
        )
        assert item_json(view)["percent"] == 50  # duban items
    digest = next(v for v in _digest(engine).views if v.item.number == 9)
    assert digest.percent == 50
    assert digest_json(_digest(engine), Translator("zh-CN"))["items"][8]["percent"] == 50
    status = _ask(engine, "王局", "/status 9")
    assert "最新进度：50%（赵主任，06-06）" in status
    assert "张三（基础教育科，牵头）：已召开推进会（06-07）" in status  # his own latest, as said
    mine = _ask(engine, "张三", "/my")
    assert "进度：50%；我的最新进展：（06-07）" in mine
    row = _ledger_row(engine, tmp_path, 9)
    assert row[9] == 0.5  # 完成率
    assert row[8] == "已召开推进会"  # 最新进展: the newest report's words


def test_a_report_entered_for_an_owner_counts_as_theirs(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 9, "张三", _at(6), 40, by="赵主任", text="电话报送")
        session.commit()
    d = _digest(engine)
    assert "张三" not in d.missing and next(v for v in d.views if v.item.number == 9).percent == 40
    assert "最新进度：40%（张三，06-06）" in _ask(engine, "王局", "/status 9")


def test_an_owner_who_reported_delay_with_a_reason_has_reported(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 8, "陈五", _at(6), None, ReportStatus.delayed, "原因：资金未到位")
        session.commit()
    d = _digest(engine)
    assert "陈五" not in d.missing
    item8 = next(v for v in d.views if v.item.number == 8)
    assert item8.status == "red" and item8.percent is None
    text = render_digest(d, "text", "zh-CN")
    line = next(x for x in text.splitlines() if x.startswith("8. "))
    assert "进度未填写" in line and "未报送" not in line and "尚无报送" not in line
    assert f"{len(d.missing)} 人未报送" in text
    assert text.split("本周未报送")[1].count("陈五") == 0


def test_every_count_in_the_overview_is_its_list(scenario: Engine) -> None:
    d = _digest(scenario)
    text = render_digest(d, "text", "zh-CN")
    assert f"滞后 {d.counts['red']}，尚无报送 {d.counts['none']}；" in text
    assert f"本周新报送 {len(d.reports)} 条，{len(d.missing)} 人未报送。" in text
    assert f"本周未报送（{len(d.missing)} 人）" in text
    assert f"滞后事项（{len(d.red)}）" in text and f"预警事项（{len(d.amber)}）" in text
    english = render_digest(d, "text", "en")
    assert f"This week: {len(d.reports)} new report(s), {len(d.missing)} people" in english


def test_a_corrected_report_is_not_news_twice(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 9, "张三", _at(6), 50)
        _record(session, 9, "张三", _at(6) + timedelta(minutes=3), 60)  # a correction
        _record(session, 22, "李四", _at(6), 30)
        person = session.exec(select(Contact).where(Contact.name == "李四")).one()
        reports.undo_last(session, person, _at(6) + timedelta(minutes=5))  # withdrawn
        session.commit()
    d = _digest(engine)
    assert [(r.item, r.percent) for r in d.reports] == [(9, 60)]
    assert "李四" in d.missing  # his only report was taken back


def test_times_are_shown_in_the_plan_time_zone(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    early = datetime(2023, 6, 8, 1, 30, tzinfo=TZ)  # still 7 June in UTC
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 9, "张三", early, 60)
        session.commit()
    assert "最新进度：60%（张三，06-08）" in _ask(engine, "王局", "/status 9")
    assert "张三（基础教育科，牵头）：60% 推进中（06-08）" in _ask(engine, "王局", "/status 9")
    assert "（06-08）" in _ask(engine, "张三", "/my")
    data = digest_json(_digest(engine), Translator("zh-CN"))
    (change,) = [c for c in data["changes"] if c["kind"] == "report"]
    assert change["at"] == "2023-06-08T01:30:00+08:00"
    assert _ledger_row(engine, tmp_path, 9)[11] == datetime(2023, 6, 8, 1, 30)  # 更新时间


def test_a_missing_deadline_says_not_set(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    with Session(engine) as session:
        item = session.exec(select(WorkItem).where(WorkItem.number == 10)).one()
        item.deadline = item.suggested_deadline = None
        session.commit()
    assert "完成时限：未设定" in _ask(engine, "王局", "/status 10")
    assert "Deadline: not set" in _ask(engine, "王局", "/status 10", locale="en")
    mine = _ask(engine, "张三", "/my")
    assert "完成时限：未设定" in mine.split("10. ")[1]
    assert "Deadline: not set" in _ask(engine, "张三", "/my", locale="en").split("10. ")[1]
    line = next(
        x
        for x in render_digest(_digest(engine), "text", "zh-CN").splitlines()
        if x.startswith("10. ")
    )
    assert "完成时限：未设定" in line and "-" not in line.replace("——", "")
    assert _ledger_row(engine, tmp_path, 10)[5] == "未设定"


def test_a_projection_needs_two_days_and_is_a_whole_count(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        plans.find_item(session, plans.current_plan(session), "9").deadline = date(2023, 6, 30)
        _record(session, 9, "张三", _at(1), 10, value=1000)
        _record(session, 9, "张三", _at(1) + timedelta(hours=5), 16, value=1600)  # same day
        session.commit()

    def places() -> object:
        item9 = next(v for v in _digest(engine).views if v.item.number == 9)
        return next(s for s in item9.targets if s.target.metric == "新增学位").projection

    assert places() is None  # two values on one day make no pace
    with Session(engine, expire_on_commit=False) as session:
        _record(session, 9, "张三", _at(7), 46, value=4600)
        session.commit()
    # 1,000 on 1 June to 4,600 on 7 June: 600 a day, on to the end of 30 June (a whole count)
    assert places() == 18_750
    assert "按此进度到期约 18,750" in render_digest(_digest(engine), "text", "zh-CN")
