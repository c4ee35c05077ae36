"""The digest chart: a PNG whose Chinese text is set in a font that has the glyphs."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import matplotlib
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from bot.chart import chart_font_path, render_progress_chart, section_label
from bot.reporting import SectionProgress

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TITLE = "江门市教育局2023年工作要点"
SUBTITLE = "2023年第23周（6月5日—6月11日）"
SECTIONS = [
    SectionProgress(
        1,
        "一",
        "加强党的领导,全面提升教育系统党的建设水平",
        {"done": 2, "green": 4, "amber": 1, "red": 0, "none": 2},
        61.7,
    ),
    SectionProgress(
        2,
        "二",
        "聚力培根铸魂,推动全环境立德树人全面实施",
        {"done": 1, "green": 3, "amber": 1, "red": 1},
        48.3,
    ),
    SectionProgress(
        3,
        "三",
        "强化统筹协调,构建高质量教育体系",
        {"done": 3, "green": 7, "amber": 2, "red": 2, "none": 2},
        55.0,
    ),
    SectionProgress(
        4, "四", "落实“新强师工程”,建设高素质教师队伍", {"green": 4, "amber": 1, "none": 1}, 40.0
    ),
    SectionProgress(
        5, "五", "夯实安全保障根基,维护教育系统安全稳定。", {"done": 1, "green": 2, "red": 1}, 72.5
    ),
    SectionProgress(
        6,
        "六",
        "深化改革创新,激发教育事业发展内生动力",
        {"green": 2, "amber": 2, "red": 1, "none": 3},
        18.0,
    ),
]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the magic bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def render_quietly(sections: list[SectionProgress], path: Path, **kwargs: str) -> Path:
    """Render, failing on any warning (a missing glyph above all)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = render_progress_chart(sections, path, **kwargs)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "missing from font" in m], messages
    assert not messages, messages
    return out


def test_font_has_the_chinese_glyphs() -> None:
    font_path = chart_font_path()
    assert font_path.is_file()
    font = FT2Font(str(font_path))
    words = "督办 已完成 正常 预警 滞后 未报送 暂无事项 事项数 条形末端百分比为该板块事项平均完成率"
    text = words + TITLE + SUBTITLE + "".join(section_label(s) for s in SECTIONS)
    missing = [c for c in text if font.get_char_index(ord(c)) == 0]
    assert not missing


def test_the_default_font_would_warn() -> None:
    """The no-warning checks below mean something: a figure without our font warns."""
    fig = Figure(figsize=(2, 1))
    FigureCanvasAgg(fig)
    fig.text(0.1, 0.5, "督办")
    with pytest.warns(UserWarning, match="missing from font"):
        fig.savefig(io.BytesIO(), format="png")


def test_six_sections_in_chinese(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    before = dict(matplotlib.rcParams)
    out = render_quietly(SECTIONS, path, title=TITLE, subtitle=SUBTITLE)
    assert out == path
    width, height = png_size(path)
    assert width == 1000
    assert 500 <= height <= 700
    assert 20_000 < path.stat().st_size < 500_000
    assert dict(matplotlib.rcParams) == before


def test_english_legend(tmp_path: Path) -> None:
    path = render_quietly(
        SECTIONS,
        tmp_path / "en.png",
        title="Jiangmen Education Bureau 2023",
        subtitle="Week 23",
        locale="en",
    )
    assert png_size(path)[0] == 1000


def test_no_sections(tmp_path: Path) -> None:
    path = render_quietly([], tmp_path / "empty.png", title=TITLE, subtitle=SUBTITLE)
    width, height = png_size(path)
    assert width == 1000
    assert height < 400
    render_quietly([], tmp_path / "empty-en.png", title="Plan", locale="en")


def test_one_and_thirty_sections(tmp_path: Path) -> None:
    one = render_quietly(SECTIONS[:1], tmp_path / "one.png", title=TITLE)
    assert png_size(one)[0] == 1000
    many = [
        SectionProgress(
            i + 1,
            str(i + 1),
            f"第{i + 1}板块工作任务名称比较长的情况",
            {"done": i % 3, "green": i % 5, "amber": i % 2, "red": int(i % 4 == 0), "none": 1},
            (i * 37) % 100,
        )
        for i in range(30)
    ]
    path = render_quietly(many, tmp_path / "thirty.png", title=TITLE, subtitle=SUBTITLE)
    width, height = png_size(path)
    assert width == 1000
    assert height > 1500


def test_odd_counts_do_not_break_it(tmp_path: Path) -> None:
    sections = [
        SectionProgress(1, "一", "没有事项的板块", {}, 0.0),
        SectionProgress(2, "", "无编号板块 $x$ 50%", {"green": 3, "unknown": 5}, 99.6),
    ]
    path = render_quietly(sections, tmp_path / "odd.png", title="标题 $1 及 100%")
    assert png_size(path)[0] == 1000


def test_section_label_is_shortened() -> None:
    assert section_label(SECTIONS[0]) == "一、加强党的领导,全面提升教育…"
    assert len(section_label(SECTIONS[0])) == 16
    assert section_label(SectionProgress(9, "九", "短标题")) == "九、短标题"
    assert section_label(SectionProgress(3, "", "只有标题")) == "只有标题"
    assert section_label(SectionProgress(4, "(四)", "括号编号")) == "(四)括号编号"
