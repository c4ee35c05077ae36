"""The console channel and `duban chat`: scripted sessions, and how messages are printed."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from bot import db
from bot.channels.console import (
    ConsoleMessenger,
    format_buttons,
    paint,
    plain_text,
)
from bot.clock import FakeClock
from bot.console_chat import read_line, run_chat
from bot.events import Button
from bot.models import Report, WorkItem
from bot.settings import Settings
from tests.harness import SHANGHAI, seed

START = datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI)


def settings_for(db_url: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings on the test database, with no channel configured."""
    values: dict[str, Any] = {"database_url": db_url, "data_dir": tmp_path, "locale": "zh-CN"}
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def seeded(db_url: str) -> None:
    """The sample plan and the cast in the test database."""
    engine = db.make_engine(db_url)
    try:
        seed(engine)
    finally:
        engine.dispose()


async def chat(settings: Settings, name: str, script: str) -> tuple[int, str]:
    """Run a session on scripted input; returns the exit code and what was printed."""
    stdout = io.StringIO()
    clock = FakeClock(START)
    code = await run_chat(settings, name, stdin=io.StringIO(script), stdout=stdout, clock=clock)
    return code, stdout.getvalue()


def reports_by_item(db_url: str) -> list[tuple[int, int | None, str, bool]]:
    """(item number, percent, text, withdrawn) of every report, oldest first."""
    engine = db.make_engine(db_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(WorkItem.number, Report.percent, Report.text, Report.withdrawn_at)
                .join(WorkItem, WorkItem.id == Report.item_id)  # type: ignore[arg-type]
                .order_by(Report.id)  # type: ignore[arg-type]
            ).all()
    finally:
        engine.dispose()
    return [
        (number, percent, text, withdrawn is not None) for number, percent, text, withdrawn in rows
    ]


async def test_scripted_session_reports_picks_and_undoes(db_url: str, tmp_path: Path) -> None:
    seeded(db_url)
    script = "/my\n9 60% 主体完工\n\n本周推进会 进度50%\n2\n/undo\n"
    code, out = await chat(settings_for(db_url, tmp_path), "张三", script)

    assert code == 0
    lines = out.splitlines()
    assert (
        lines[0]
        == "10:00 督办 → 张三: 张三，您好！这里是督办助手。输入 /help 查看可用命令，Ctrl-D 退出"
    )
    assert "10:00 张三 → 督办: /my" in lines
    assert "    🟡 9. 持续扩增教育优质资源" in lines
    assert "    🟡 10. 推进学前教育普及普惠健康发展" in lines
    assert "10:00 督办 → 张三: 已记录 第9项「持续扩增教育优质资源」" in lines
    assert "10:00 张三 → 督办: 本周推进会 进度50%" in lines
    which = lines.index(
        "10:00 督办 → 张三: 这条进展是关于哪一项工作？请点选，或直接回复事项编号"
        "（您的事项：9、10），例如：9"
    )
    assert lines[which + 1 : which + 4] == [
        "    [1] 9. 持续扩增教育优质资源",
        "    [2] 10. 推进学前教育普及普惠健康发展",
        "    [3] 这不是进展",
    ]
    assert lines[which + 4] == "10:00 张三 → 督办: 2 → 10. 推进学前教育普及普惠健康发展"
    assert lines[which + 5] == "10:00 督办 → 张三: 已记录 第10项「推进学前教育普及普惠健康发展」"
    assert "    说明：本周推进会" in lines
    assert lines[-1] == (
        "10:00 督办 → 张三: 已撤回您对第 10 项“推进学前教育普及普惠健康发展”的最近一条进展。"
    )
    assert "" not in lines  # the empty input line was skipped, not sent

    assert reports_by_item(db_url) == [(9, 60, "主体完工", False), (10, 50, "本周推进会", True)]


async def test_a_number_without_choices_is_plain_text(db_url: str, tmp_path: Path) -> None:
    seeded(db_url)
    code, out = await chat(settings_for(db_url, tmp_path), "李四", "1\n/quit\n/undo\n")

    assert code == 0
    assert "10:00 李四 → 督办: 1\n" in out  # no buttons shown: "1" went out as text
    assert "/undo" not in out  # /quit ended the session
    assert reports_by_item(db_url) == []


async def test_unknown_name_exits_2_with_the_cli_message(db_url: str, tmp_path: Path) -> None:
    seeded(db_url)
    code, out = await chat(settings_for(db_url, tmp_path), "无名氏", "/my\n")

    assert code == 2
    assert out == (
        "没有名为“无名氏”的联系人。请先登记，例如："
        "duban contacts add 无名氏 --unit 基础教育科 --role official\n"
    )


async def test_english_greeting(db_url: str, tmp_path: Path) -> None:
    seeded(db_url)
    code, out = await chat(settings_for(db_url, tmp_path, locale="en"), "王局", "")

    assert code == 0
    assert out == (
        "10:00 督办 → 王局: Hello 王局, this is Duban. "
        "Type /help for the commands, Ctrl-D to quit.\n"
    )


# --- the messenger ------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def messenger(stream: io.StringIO, **kw: Any) -> ConsoleMessenger:
    """A console messenger at 02:05 UTC (10:05 in the plan's time zone)."""
    clock = FakeClock(datetime(2023, 6, 1, 2, 5, tzinfo=UTC))
    return ConsoleMessenger(stream, clock=clock, tz=SHANGHAI, **kw)


async def test_buttons_are_numbered_choices_kept_per_chat() -> None:
    out = io.StringIO()
    console = messenger(out)
    pick9 = Button("9. 持续扩增教育优质资源", "pick:1:9")
    pick10 = Button("10. 推进学前教育", "pick:1:10")
    sent = await console.send_text("张三", "哪一项？", buttons=((pick9,), (pick10,)))

    assert out.getvalue() == (
        "10:05 督办 → 张三: 哪一项？\n    [1] 9. 持续扩增教育优质资源\n    [2] 10. 推进学前教育\n"
    )
    assert (sent.platform, sent.chat_id, sent.message_id) == ("console", "张三", "1")
    assert console.choice("张三", " 2 ") == pick10
    assert console.choice("张三", "3") is None
    assert console.choice("张三", "0") is None
    assert console.choice("李四", "1") is None  # choices belong to their chat
    assert format_buttons([pick9]) == ["[1] 9. 持续扩增教育优质资源"]

    await console.send_text("张三", "已记录")  # a later message replaces the choices
    assert console.choice("张三", "1") is None
    assert [line.text for line in console.transcript] == ["哪一项？", "已记录"]
    assert console.transcript[0].buttons == ("[1] 9. 持续扩增教育优质资源", "[2] 10. 推进学前教育")


async def test_files_photos_multiline_and_message_ids() -> None:
    out = io.StringIO()
    console = messenger(out)
    first = await console.send_file("王局", Path("exports/ledger.xlsx"), caption="台账")
    second = await console.send_photo("王局", Path("charts/digest.png"))
    other = await console.send_text("李四", "第一行\n\n第三行")

    assert out.getvalue() == (
        "10:05 督办 → 王局: 台账\n    📎 exports/ledger.xlsx\n"
        "10:05 督办 → 王局: 📎 charts/digest.png\n"
        "10:05 督办 → 李四: 第一行\n\n    第三行\n"
    )
    assert [first.message_id, second.message_id, other.message_id] == ["1", "2", "1"]
    line = console.transcript[1]
    assert (line.time.hour, line.sender, line.recipient, line.text) == (
        10,
        "督办",
        "王局",
        "📎 charts/digest.png",
    )


async def test_colours_only_on_a_terminal_and_per_role() -> None:
    plain = messenger(io.StringIO(), colors=True)
    assert plain.colors is False  # not a terminal

    screen = FakeTerminal()
    console = messenger(screen, colors=True, roles={"王局": "leader"})
    await console.send_text("王局", "<b>周报</b> &amp; 图表", markup="html")
    console.user_says("王局", "/digest")

    bot, leader = "\033[36m督办\033[0m", "\033[35m王局\033[0m"
    assert screen.getvalue() == (
        f"\033[2m10:05\033[0m {bot} → {leader}: 周报 & 图表\n"
        f"\033[2m10:05\033[0m {leader} → {bot}: /digest\n"
    )
    assert messenger(FakeTerminal(), colors=False).colors is False
    assert paint("x", None, colors=True) == "x"
    assert plain_text("<i>a</i> &lt;b&gt;", "markdown") == "<i>a</i> &lt;b&gt;"


async def test_read_line_returns_lines_then_empty_at_eof() -> None:
    stream = io.StringIO("一\n二")
    assert [await read_line(stream) for _ in range(3)] == ["一\n", "二", ""]
