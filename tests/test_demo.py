"""`duban demo`: the fortnight plays through the real router, planner, outbox and dispatcher."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.cli import app


@pytest.fixture
def demo_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCALE", "zh-CN")
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-color"])
    assert result.exit_code == 0, result.output
    return result.stdout, out


def test_the_fortnight_shows_the_whole_product(demo_output: tuple[str, Path]) -> None:
    text, out = demo_output
    # asks go out on Friday 9 June, to every official with open items
    assert "10:00 督办 → 张敏: 张敏您好，请报送本周工作进展" in text
    # officials answer in the different reply forms, and the bot confirms what it understood
    assert "新增学位：6,500 / 10,000 个（65%）" in text
    assert "已记录 第11项「推动义务教育优质均衡发展」" in text  # 第11项 进度40%
    assert "这条进展是关于哪一项工作？请点选" in text and "[1] 5." in text  # ambiguous -> choice
    assert "已记录 第5项" in text  # ... recorded on the click
    assert "已记录 第1项「深入学习宣传贯彻党的二十大精神」\n    进度：100%；状态：已完成" in text
    assert "已撤回您对第 21 项" in text  # /undo
    # a deadline comes near, one item falls behind, one is overdue and escalates
    assert "将于 2023-06-09 到期（还有 3 个工作日）" in text
    assert "已记录 第13项「推动职业教育提质培优」\n    进度：未填写；状态：滞后" in text
    assert "督办 → 陈局长: 督办提示：第 20 项" in text
    # non-responders are reminded; the leaders get the weekly digest on Monday
    assert "上次的进展询问尚未收到您的回复" in text
    assert "09:00 督办 → 陈局长: 【《江门市教育局2023年工作要点》督办周报】" in text
    # nothing on the weekend of 10-11 June
    assert "2023-06-10" not in text and "2023-06-11" not in text
    # it ends with the digest and the paths of what it wrote
    assert text.rstrip().splitlines()[-1].startswith("数据库：")
    ledger, chart = out / "台账.xlsx", out / "进度图.png"
    assert f"台账：{ledger}" in text and f"进度图：{chart}" in text
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(openpyxl.load_workbook(ledger).worksheets[0].iter_rows(values_only=True))
    assert any(row[0] == 14 and row[10] == "已完成" for row in rows)


def test_each_run_starts_from_a_fresh_database(demo_output: tuple[str, Path]) -> None:
    _, out = demo_output
    again = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-color"])
    assert again.exit_code == 0
    assert again.stdout.count("已记录 第9项") == 1
