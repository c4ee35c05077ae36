"""The weekly digest's chart: progress per section as horizontal stacked bars, as a PNG."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pylopdf_fonts_zh_cn
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from bot.reporting import SectionProgress

# Stacking order, left to right, and each status's colour.
ORDER = ("done", "green", "amber", "red", "none")
COLOURS = {
    "done": "#2e7d32",
    "green": "#66bb6a",
    "amber": "#ffb300",
    "red": "#e53935",
    "none": "#bdbdbd",
}
# Text drawn on a segment: white on the dark ones, near-black on the light ones.
_INK = {"done": "white", "green": "#1b1b1b", "amber": "#1b1b1b", "red": "white", "none": "#1b1b1b"}

_WORDS = {
    "zh": {
        "done": "已完成",
        "green": "正常",
        "amber": "预警",
        "red": "滞后",
        "none": "未报送",
        "empty": "暂无事项",
        "axis": "事项数",
        "note": "条形末端百分比为该板块事项平均完成率",
    },
    "en": {
        "done": "done",
        "green": "on track",
        "amber": "at risk",
        "red": "behind",
        "none": "no report",
        "empty": "no items",
        "axis": "items",
        "note": "Percent at bar end: the section's average completion",
    },
}

LABEL_CHARS = 16  # a section's label is cut to this many characters, "…" included
DPI = 100
WIDTH_IN = 10.0
_TOP_IN = 1.45  # title, subtitle and legend
_BOTTOM_IN = 0.85  # x axis, its label and the note
_BAR_IN = 0.5  # one bar's row
_GREY = "#555555"
_PNG = {"compress_level": 3}  # flat colours compress well even so; level 6 takes twice as long
_HALF = 0.31  # half a bar's thickness, in rows


def chart_font_path() -> Path:
    """The CJK font file every text on the chart is set in (Noto Sans SC, OFL-1.1)."""
    return Path(pylopdf_fonts_zh_cn.sans_path())


@cache
def _font(size: float) -> FontProperties:
    """The chart's font at a size, cached (treat as read-only)."""
    return FontProperties(fname=str(chart_font_path()), size=size)


def _words(locale: str) -> dict[str, str]:
    """The chart's words for a locale: English for en*, Chinese otherwise."""
    return _WORDS["en" if locale.lower().startswith("en") else "zh"]


def _em(text: str) -> float:
    """Rough width of text in ems: wide (CJK) characters 1, others 0.6."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.6 for c in text)


def _fit(text: str, size: float) -> float:
    """The font size, at most size, at which text fits across the figure."""
    room_pt = (WIDTH_IN - 0.5) * 72
    return max(8.0, min(size, room_pt / max(_em(text), 1.0)))


def section_label(section: SectionProgress, limit: int = LABEL_CHARS) -> str:
    """A section's label for the chart, e.g. "一、加强党的领导…", at most limit characters."""
    label = section.label.strip()
    title = section.title.strip()
    if label and title:
        sep = "" if label[-1] in "、.．)）" else "、"
        text = f"{label}{sep}{title}"
    else:
        text = label or title or str(section.number)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(fig: Figure, height_in: float, title: str, subtitle: str) -> None:
    """Write the title and subtitle at the top of the figure."""
    fig.text(
        0.5,
        1 - 0.22 / height_in,
        title,
        ha="center",
        va="top",
        fontproperties=_font(_fit(title, 17.0)),
        parse_math=False,
    )
    if subtitle:
        fig.text(
            0.5,
            1 - 0.62 / height_in,
            subtitle,
            ha="center",
            va="top",
            color=_GREY,
            fontproperties=_font(_fit(subtitle, 12.5)),
            parse_math=False,
        )


def _render_empty(path: Path, title: str, subtitle: str, words: dict[str, str]) -> Path:
    """A small chart that only says there are no items."""
    height_in = 2.6
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    _header(fig, height_in, title, subtitle)
    fig.text(
        0.5, 0.36, words["empty"], ha="center", va="center", color=_GREY, fontproperties=_font(16)
    )
    fig.savefig(path, format="png", dpi=DPI, facecolor="white", pil_kwargs=_PNG)
    return path


def render_progress_chart(
    sections: Sequence[SectionProgress],
    path: Path,
    *,
    title: str,
    subtitle: str = "",
    locale: str = "zh-CN",
) -> Path:
    """Draw each section's items by status as a stacked bar and save the chart as PNG."""
    path = Path(path)
    words = _words(locale)
    if not sections:
        return _render_empty(path, title, subtitle, words)

    n = len(sections)
    labels = [section_label(s) for s in sections]
    counts = {k: [max(0, int(s.counts.get(k, 0))) for s in sections] for k in ORDER}
    totals = [sum(counts[k][i] for k in ORDER) for i in range(n)]
    top = max(max(totals), 1)

    tick_size = 12.0
    left_in = min(max(_em(max(labels, key=_em)) * tick_size / 72 + 0.35, 1.2), 3.6)
    right_in = 0.35
    height_in = _TOP_IN + _BOTTOM_IN + _BAR_IN * n
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=left_in / WIDTH_IN,
        right=1 - right_in / WIDTH_IN,
        top=1 - _TOP_IN / height_in,
        bottom=_BOTTOM_IN / height_in,
    )
    ax = fig.add_subplot()
    _header(fig, height_in, title, subtitle)

    xmax = top * 1.1 + 0.5  # room for the percent at the end of the longest bar
    px_per_item = (WIDTH_IN - left_in - right_in) * DPI / xmax
    starts = [0] * n
    for key in ORDER:
        widths = counts[key]
        boxes = [
            [(x, i - _HALF), (x + w, i - _HALF), (x + w, i + _HALF), (x, i + _HALF)]
            for i, (x, w) in enumerate(zip(starts, widths, strict=True))
            if w
        ]
        # One collection per status: far cheaper to draw than a patch per segment.
        ax.add_collection(
            PolyCollection(boxes, facecolors=COLOURS[key], edgecolors="white", linewidths=0.8),
            autolim=False,
        )
        for i, w in enumerate(widths):
            if w and w * px_per_item >= 9 * len(str(w)) + 8:
                ax.text(
                    starts[i] + w / 2,
                    i,
                    str(w),
                    ha="center",
                    va="center",
                    color=_INK[key],
                    fontproperties=_font(10.5),
                )
        starts = [s + w for s, w in zip(starts, widths, strict=True)]

    for i, s in enumerate(sections):
        ax.text(
            totals[i] + xmax * 0.012,
            i,
            f"{round(s.average_percent)}%",
            ha="left",
            va="center",
            color="#222222",
            fontproperties=_font(11.5),
        )

    ax.set_ylim(n - 0.5, -0.5)  # first section on top
    ax.set_yticks([])  # labels as plain texts: much cheaper than ticks
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for i, label in enumerate(labels):
        ax.text(
            -0.012,
            i,
            label,
            ha="right",
            va="center",
            transform=beside,
            color="#222222",
            fontproperties=_font(tick_size),
            parse_math=False,
        )
    ax.set_xlim(0, xmax)
    step = _nice_step(top)
    ticks = list(range(0, int(xmax) + 1, step))
    ax.set_xticks(ticks, [str(t) for t in ticks], fontproperties=_font(10), color=_GREY)
    ax.set_xlabel(words["axis"], fontproperties=_font(10.5), color=_GREY)
    ax.tick_params(axis="x", colors=_GREY)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#999999")

    totals_by_status = {k: sum(counts[k]) for k in ORDER}
    handles = [Patch(facecolor=COLOURS[k], edgecolor="none") for k in ORDER]
    names = [f"{words[k]} {totals_by_status[k]}" for k in ORDER]
    fig.legend(
        handles,
        names,
        loc="lower center",
        bbox_to_anchor=(0.5, 1 - (_TOP_IN - 0.08) / height_in),
        ncol=len(ORDER),
        frameon=False,
        prop=_font(11.5),
        handlelength=1.3,
        handleheight=1.0,
        columnspacing=1.8,
    )
    fig.text(
        1 - right_in / WIDTH_IN,
        0.12 / height_in,
        words["note"],
        ha="right",
        va="bottom",
        color="#888888",
        fontproperties=_font(9.5),
    )
    fig.savefig(path, format="png", dpi=DPI, facecolor="white", pil_kwargs=_PNG)
    return path


def _nice_step(top: int) -> int:
    """A tick step giving about five to eight ticks up to top."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500):
        if top / step <= 8:
            return step
    return 1000
