"""Progress reports written in plain Chinese: which item, how far, what status, which numbers.

parse_report_text reads one message; match_targets ties its numbers to the item's targets.
Full-width digits, letters, ％ and the ideographic space are folded first (the full-width
comma ， is kept, so "9，600个" never reads as 9600).

Forms understood:
- Item reference at the start: "9 60%", "9、60%", "9. 已完成", "#9", "第9项", "第九项"
  (item_ref "9"), "9号", "9项 ..." (before a space or separator), labels "三.2", "三、2",
  "3.2"; "#9" is also found anywhere. A leading number is not an item when it is a quantity
  ("6500个学位已建成"), a year ("2023年") or a date ("6月30日").
- Command mode (`/report 9 60 华侨...`, command=True, the text after the command): the first
  token is the item; a bare second number 0..100 is the percent even without %.
- Percent: "60%", "６０％", "百分之六十", "60%以上"; right after the item, after a progress word
  ("进度60%", "完成80%", "已完成80%", "进度为60%", "目前进度约60%", "完成百分之六十"), after
  "进度" without % ("进度60"), or standing alone in its clause. A percentage after other words
  ("公办占比46%", "近视率下降0.3%") is a number, not the report's percent. Words such as
  "进度过半" give no percent.
- Status words: 已完成/完成/已办结/办结 (and 全部完成, 均已完成) -> done, with percent 100 when
  none is given, but only when no number follows ("完成80%" is a percent, "完成6500个学位" a
  quantity); 推进中/进行中/正在推进/有序推进 (and 稳步推进, 按计划推进, 实施中) -> in_progress;
  滞后/延期/受阻/延误 (and 推迟, 逾期) -> delayed; 未启动/尚未启动/未开始 (and 暂未启动,
  尚未开始) -> not_started. Read at the start of the message (after item and percent, with
  an optional "进度"/"目前" before it) or as a whole clause anywhere ("..., 整体进度滞后").
  A percent alone sets no status; the caller derives it.
- Numbers: Arabic ("6500", "6,500", "1.2万", "6千5百"), full-width and Chinese numerals
  ("十二个"), with a unit (个 所 % 个百分点 人 名 ...) or, for Arabic digits, without one.
  Skipped: the item reference, the report's percent, years and dates ("2023年", "6月30日",
  "6.30前"), times, ordinals ("第三届"), ranges ("10-20所"), codes ("5G"), Chinese numerals
  without a unit ("十四五"), a lone 一 ("一所一策") and slogans in quotes (“三所学校”).
- Errors: empty text (report.empty), more than 4000 characters (report.too_long), a report
  percent outside 0..100 (report.bad_percent, "9 120%").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from typing import Protocol, TypeVar

from bot.cn_numbers import NUMBER_PATTERN, cn_int, fold_width, parse_number
from bot.i18n import UserError
from bot.models import ReportStatus
from bot.units import UNITS

__all__ = [
    "MAX_REPORT_LENGTH",
    "NumberMention",
    "ParsedReport",
    "TargetLike",
    "match_targets",
    "parse_report_text",
]

MAX_REPORT_LENGTH = 4000

# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberMention:
    """A number the official wrote, with its unit and the words around it."""

    value: float  # 6500.0 for "6500个", "6,500", "6千5百"; 12000.0 for "1.2万"
    unit: str  # canonical unit: "个", "所", "%", "个百分点", "人", ... or "" when none
    context: str  # the words just before the number (up to 12 chars, cut at punctuation)
    text: str  # the source phrase: context, number, unit and the words after it
    after: str = ""  # the words just after the number and unit (up to 8 chars)


@dataclass
class ParsedReport:
    """What one progress message says."""

    item_ref: str | None  # "9" for "9 60%", "#9", "第9项", "第九项", "9号"; "三.2" for labels
    percent: int | None  # 0..100
    status: ReportStatus | None
    numbers: list[NumberMention] = field(default_factory=list)
    note: str = ""  # the free text, without item ref, percent and leading status word


class TargetLike(Protocol):
    """What match_targets needs of a target (a Target row satisfies it)."""

    @property
    def metric(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def comparator(self) -> str: ...


T = TypeVar("T", bound=TargetLike)

# --- vocabulary -------------------------------------------------------------------------

_UNITS = UNITS  # the importer's own table (bot/units.py): the same canonical names
_UNIT_ALT = "|".join(f"(?:{pattern})" for pattern, _ in _UNITS)
_PERCENT_UNITS = frozenset({"%", "个百分点"})

_STATUS_WORDS: dict[str, ReportStatus] = {
    **dict.fromkeys(
        [
            "已办结",
            "办结",
            "已完成",
            "已经完成",
            "已全部完成",
            "全部完成",
            "均已完成",
            "完成",
            "以完成",  # common slips for 已完成
            "已完城",
            "已全部完工",
            "全部完工",
            "已完工",
            "完工",
            "已竣工",
            "竣工",
            "搞定",
            "已搞定",
            "做完",
            "办完",
        ],
        ReportStatus.done,
    ),
    **dict.fromkeys(
        [
            "推进中",
            "进行中",
            "正在推进",
            "有序推进",
            "稳步推进",
            "按计划推进",
            "正常推进",
            "正在进行",
            "实施中",
            "在推进",
            "正在进行中",
        ],
        ReportStatus.in_progress,
    ),
    **dict.fromkeys(
        [
            "滞后",
            "延期",
            "受阻",
            "延误",
            "推迟",
            "逾期",
            "慢",
            "偏慢",
            "较慢",
            "缓慢",
            "进度慢",
            "进度偏慢",
            "进度较慢",
            "赶不上",
        ],
        ReportStatus.delayed,
    ),
    **dict.fromkeys(
        [
            "未启动",
            "尚未启动",
            "暂未启动",
            "还未启动",
            "还没启动",
            "没启动",
            "未开始",
            "尚未开始",
            "暂未开始",
            "还未开始",
            "还没开始",
            "没开始",
            "未开展",
            "尚未开展",
            "还没开展",
        ],
        ReportStatus.not_started,
    ),
}


def status_word(word: str) -> ReportStatus | None:
    """The status a single word names: a status value (done, in_progress ...), or a word people
    write in Chinese or English (已完成, 推进中, 滞后, not started ...); else None."""
    word = " ".join(word.strip().split())
    try:
        return ReportStatus(word.replace(" ", "_").lower())
    except ValueError:
        pass
    return _STATUS_WORDS.get(word) or _EN_STATUS_WORDS.get(word.lower())


# English status words (LOCALE=en).
_EN_STATUS_WORDS: dict[str, ReportStatus] = {
    **dict.fromkeys(["done", "completed", "complete", "finished"], ReportStatus.done),
    **dict.fromkeys(
        ["in progress", "ongoing", "on track", "underway", "under way"], ReportStatus.in_progress
    ),
    **dict.fromkeys(["delayed", "behind", "blocked", "late", "overdue"], ReportStatus.delayed),
    **dict.fromkeys(["not started", "not yet started"], ReportStatus.not_started),
}
_EN_STATUS_RE = re.compile(
    r"(?<![A-Za-z])(?:"
    + "|".join(
        r"\s+".join(map(re.escape, w.split()))
        for w in sorted(_EN_STATUS_WORDS, key=len, reverse=True)
    )
    + r")(?![A-Za-z])",
    re.IGNORECASE,
)

# Words that name no metric: they never make a mention match a target on their own.
_STOP_WORDS = (
    "全市",
    "全区",
    "全县",
    "我市",
    "全省",
    "完成",
    "推进",
    "工作",
    "建设",
    "学校",
    "教育",
    "全面",
    "持续",
    "加快",
    "加强",
    "进一步",
    "实现",
    "达到",
    "确保",
    "力争",
    "累计",
    "目前",
    "已经",
    "任务",
    "项目",
    "开展",
    "落实",
    "目标",
    "情况",
    "进度",
    "进展",
    "其中",
    "共计",
)

# --- regexes ----------------------------------------------------------------------------


def _alternation(words: Sequence[str]) -> str:
    """Regex alternation of words, longest first."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_SEPARATORS = " \t\r\n、,，.:：;；"
_BREAKS = frozenset(" \t\r\n、,，。.:：;；!！?？()（）[]【】<>《》“”\"'‘’/|")
_QUOTE_OPEN = frozenset("“‘\"'《〈「『")
_CN_NUM_CHARS = "零〇一二两三四五六七八九十百"

# What may follow an item reference such as "9号", "9项" or "第9".
_REF_END = (
    r"(?=$|[\s、,，.:：;；)）]|\d|百分之|进度|进展|已|完成|办结|滞后|延期|受阻|延误|推迟|逾期"
    r"|推进|进行|正在|有序|稳步|按计划|实施|未|尚未|暂未|还未)"
)
_BARE_REF_END = r"(?=$|[\s、,，:：;；)）】\]?？]|\.(?!\d)|[-—](?!\d))"
_NOT_QUANTITY = rf"(?!\s*(?:多|余)?\s*(?:{_UNIT_ALT}|[年月日号时点分秒]))"
_REF_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"#\s*(?P<n>\d+)"),
    re.compile(rf"第\s*(?P<n>\d+|[{_CN_NUM_CHARS}]+)\s*[项号条]"),
    re.compile(rf"第\s*(?P<n>\d+|[{_CN_NUM_CHARS}]+){_BARE_REF_END}"),
    re.compile(
        r"(?:(?P<sec>[一二三四五六七八九十]+)\s*[.、]\s*|(?P<asec>\d{1,3})\.)(?P<sub>\d{1,3})(?![\d.])"
        rf"{_NOT_QUANTITY}{_BARE_REF_END}"
    ),
    re.compile(r"(?P<n>\d{1,3})\s*号(?!\s*(?:前|后|之前|以前|左右))" + _REF_END),
    re.compile(r"(?P<n>\d{1,3})\s*项" + _REF_END),
    re.compile(rf"(?P<n>\d{{1,3}})(?!\d|[.,:]\d){_NOT_QUANTITY}{_BARE_REF_END}"),
)
# A bare number at the head of a body: the percent in command mode, else asked about.
_BARE_HEAD_RE = re.compile(r"[\s:：、\-—]*(?P<n>\d{1,3}(?:\.\d+)?)(?=$|[\s,，、;；。])")
_HASH_REF_RE = re.compile(r"(?<![0-9A-Za-z&])#\s*(?P<n>\d{1,4})(?!\d)")

# "七成" is 70%, "一半" 50%; 成 in words such as 成本, 成员, 成立, 成果 is no tenth.
_TENTHS = (
    r"(?<![一二三四五六七八九\d])(?P<tenths>[一二三四五六七八九]|[1-9])\s*成"
    r"(?![本员立果功效为绩熟型交品就长人年])"
)
_PERCENT_TOKEN = (
    rf"(?:(?P<pnum>{NUMBER_PATTERN})\s*%|百分之\s*(?P<cnum>{NUMBER_PATTERN}|百)"
    rf"|{_TENTHS}|(?P<half>一半))"
)
_PERCENT_POST = r"(?:\s*(?:以上|左右|多|以内))?"
_PERCENT_POST_RE = re.compile(_PERCENT_POST)
_PROGRESS_WORD = r"(?:进度|进展|完成度|完成率|已经完成|已完成|累计完成|完成了|完成)"
_PROGRESS_FILLER = r"(?:为|是|达到|已达到|已达|达|已|约|近|了|在|超过|超|:|\s)"
_SUBJECT = r"(?:目前|当前|现在|现|整体|总体|工作|项目|总|都|均|也|已经)"
# A percent at the head of the message body: "60%", "进度60%", "完成百分之六十".
_LEAD_PERCENT_RE = re.compile(
    rf"{_SUBJECT}*{_PROGRESS_WORD}?{_PROGRESS_FILLER}*{_PERCENT_TOKEN}{_PERCENT_POST}"
)
# "进度60" without %: a bare number after 进度 that is no quantity.
_LEAD_BARE_PERCENT_RE = re.compile(
    rf"{_SUBJECT}*(?:进度|进展){_PROGRESS_FILLER}*(?P<bare>\d{{1,3}})(?![\d.]){_NOT_QUANTITY}"
)
# The words before a percentage that make it the report's percent.
_PROGRESS_PREFIX_RE = re.compile(rf"{_SUBJECT}*{_PROGRESS_WORD}?{_PROGRESS_FILLER}*")
_PROGRESS_TAIL_RE = re.compile(rf"{_PROGRESS_WORD}{_PROGRESS_FILLER}*$")
_RATE_NOUN_RE = re.compile(r"率|占比|比例|比重|覆盖")
# Words that make a following percentage a change or a level of something else.
_CHANGE_TAIL_RE = re.compile(
    r"(?:下降|降低|减少|降至|降到|提高|提升|增长|增加|增幅|上升|超过|不低于|不少于|达到|占|约)\s*$"
)

_STATUS_ALT = _alternation(list(_STATUS_WORDS))
_DONE_END = rf"(?=\s*$|\s*[^\w\s%]|\s+(?!{NUMBER_PATTERN}|百分之))"
_LEAD_STATUS_RE = re.compile(
    rf"{_SUBJECT}?(?:进度|进展)?(?P<word>{_STATUS_ALT})(?P<tail>了|(?:全部)?(?:目标)?(?:任务|工作))?"
)
_DONE_END_RE = re.compile(_DONE_END)
# "没有滞后", "不会延期", "未完成": a status word that is denied states nothing.
_NEGATION_RE = re.compile(r"(?:没有|没|未|不会|不|无|并未|并没有|非)\s*$")
# Words that may stand before a status word in a clause of its own ("有点滞后", "这个还没开始").
_STATUS_ADVERB = (
    r"(?:有点|有些|稍有|略有|略|稍|明显|严重|比较|较为|仍然|仍|还是|这个|这项|该项|进度|进展)"
)
_CLAUSE_STATUS_RE = re.compile(
    rf"(?:{_SUBJECT}|{_STATUS_ADVERB}|均|已经|全部)*(?P<word>{_STATUS_ALT})(?:了|(?:全部)?(?:任务|工作))?"
)
# A state other than done at the end of a clause: "巩固提升正在推进", "二期工程进度滞后".
_NOT_DONE_ALT = _alternation(
    [w for w, st in _STATUS_WORDS.items() if st is not ReportStatus.done and len(w) > 1]
)
_CLAUSE_END_STATUS_RE = re.compile(
    rf"(?:{_STATUS_ADVERB}|正在|仍在)?(?P<word>{_NOT_DONE_ALT})(?:了|中)?$"
)
# Done at the end of a clause only when the whole is meant: "我们这边已经全部完成了啊".
_CLAUSE_END_DONE_RE = re.compile(
    r"(?:已经|已|都|均)?全部(?:都)?(?P<word>完成|完工|办结|竣工)了?[啊呀吧哈的啦]*$"
)
_CLAUSE_RE = re.compile(r"[^\s，,。.!！?？;；、:：()（）]+")

# One number: a percentage in words, Arabic digits mixed with 千/百 ("6千5百"),
# a number with a unit, or a bare number.
_QUANTITY_RE = re.compile(
    rf"百分之\s*(?P<per>{NUMBER_PATTERN}|百)|{_TENTHS}|(?P<half>一半)"
    r"|(?P<mixed>\d[千仟](?![米克瓦])(?:\d[百佰](?!分))?(?:\d[十拾])?\d?|\d[百佰](?!分)(?:\d[十拾])?\d?)"
    rf"\s*(?:多|余)?\s*(?P<munit>{_UNIT_ALT})?"
    rf"|(?P<num>{NUMBER_PATTERN})\s*(?:多|余)?\s*(?P<unit>{_UNIT_ALT})"
    rf"|(?P<bare>{NUMBER_PATTERN})"
)
_DATE_SUFFIX_RE = re.compile(
    r"\s*(?:[年月日号时点分秒周季]|前|后|底|初|旬)(?:度|底|末|初|内|以来|前|后|份|中|左右)?"
)
_ARABIC_TO_CN = str.maketrans("0123456789", "零一二三四五六七八九")
_PARENTHESES_RE = re.compile(r"[(（][^)）]*[)）]")

# --- parsing ----------------------------------------------------------------------------


@dataclass
class _Scan:
    """Working state while reading one message."""

    norm: str
    removed: list[tuple[int, int]] = field(default_factory=list)
    barriers: list[int] = field(default_factory=list)

    def remove(self, start: int, end: int) -> None:
        """Take a span out of the note and out of the numbers."""
        self.removed.append((start, end))
        self.barriers.append(end)

    def overlaps(self, start: int, end: int) -> bool:
        """Whether the span touches a removed span."""
        return any(start < e and s < end for s, e in self.removed)

    def floor(self, pos: int) -> int:
        """The last barrier at or before pos."""
        return max((b for b in self.barriers if b <= pos), default=0)


def _skip_separators(norm: str, pos: int) -> int:
    """Position after any separators at pos."""
    while pos < len(norm) and norm[pos] in _SEPARATORS:
        pos += 1
    return pos


def _to_percent(raw: str, value: float | None) -> int:
    """The report percent for a typed percentage, or UserError when outside 0..100."""
    if value is None or not 0 <= value <= 100:
        raise UserError("report.bad_percent", value=raw)
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _percent_of(m: re.Match[str]) -> int:
    """The percent of a _PERCENT_TOKEN match."""
    if m.group("tenths") is not None:
        return 10 * (cn_int(m.group("tenths")) or 0)
    if m.group("half") is not None:
        return 50
    if m.group("pnum") is not None:
        raw = m.group("pnum")
        return _to_percent(f"{raw}%", parse_number(raw))
    raw = m.group("cnum")
    value = 100.0 if raw == "百" else parse_number(raw)
    return _to_percent(f"百分之{raw}", value)


def _read_ref(norm: str, pos: int) -> tuple[str, int] | None:
    """The item reference at pos and where it ends, or None."""
    for regex in _REF_RES:
        m = regex.match(norm, pos)
        if m is None:
            continue
        groups = m.groupdict()
        if groups.get("sub") is not None:
            return f"{groups['sec'] or groups['asec']}.{groups['sub']}", m.end()
        number = cn_int(groups["n"])
        if number is None or number == 0:
            continue
        return str(number), m.end()
    return None


def _clause_start(scan: _Scan, pos: int, limit: int = 12) -> tuple[int, int]:
    """Start and end of the words right before pos (end skips spaces just before pos)."""
    norm = scan.norm
    floor = scan.floor(pos)
    end = pos
    while end > floor and norm[end - 1] in " \t":
        end -= 1
    start = end
    while start > floor and end - start < limit and norm[start - 1] not in _BREAKS:
        start -= 1
    return start, end


def _progress_start(prefix: str) -> int | None:
    """Where the progress words begin when the words before a percentage make it the
    report's percent ("进度为", "华侨小学已完成"), else None ("公办占比", "近视率下降")."""
    if _PROGRESS_PREFIX_RE.fullmatch(prefix):
        return 0
    tail = _PROGRESS_TAIL_RE.search(prefix)
    if tail is None or _RATE_NOUN_RE.search(prefix[: tail.start()]):
        return None
    return tail.start()


def _number_value(m: re.Match[str]) -> tuple[str, float | None, str]:
    """The raw number, its value and canonical unit of a _QUANTITY_RE match."""
    if m.group("per") is not None:
        raw = m.group("per")
        return raw, 100.0 if raw == "百" else parse_number(raw), "%"
    if m.group("tenths") is not None:
        return m.group(), 10.0 * (cn_int(m.group("tenths")) or 0), "%"
    if m.group("half") is not None:
        return m.group(), 50.0, "%"
    if m.group("mixed") is not None:
        raw = m.group("mixed")
        unit_text = m.group("munit")
        value = parse_number(raw.translate(_ARABIC_TO_CN))
    elif m.group("num") is not None:
        raw, unit_text = m.group("num"), m.group("unit")
        value = parse_number(raw)
    else:
        raw, unit_text = m.group("bare"), None
        value = parse_number(raw)
    unit = ""
    if unit_text:
        unit = next(name for pattern, name in _UNITS if re.fullmatch(pattern, unit_text))
    return raw, value, unit


def _skip_reason(norm: str, m: re.Match[str], raw: str, unit: str) -> int | None:
    """Where a number that is not a quantity ends (year, date, ordinal, code), else None."""
    start, end = m.start(), m.end()
    prev = norm[start - 1] if start else ""
    prev2 = norm[start - 2] if start > 1 else ""
    nxt = norm[end] if end < len(norm) else ""
    nxt2 = norm[end + 1] if end + 1 < len(norm) else ""
    if prev and (prev in "第#./-~～_—" or (prev.isascii() and prev.isalnum()) or prev.isdigit()):
        return end  # ordinal, code, decimal tail, range end
    if prev == ":" and prev2.isdigit():
        return end  # time
    if prev in _QUOTE_OPEN:
        return end  # slogan: “三所学校”
    if nxt and ((nxt.isascii() and nxt.isalpha()) or (nxt in "/-~～:" and nxt2.isdigit())):
        return end  # 5G, 6/30, 10-20, 10:30
    is_cn = raw[:1] in _CN_NUM_CHARS
    if is_cn and (not unit or raw in ("一", "壹")):
        return end  # 十四五, 一所一策
    if not unit:
        date = _DATE_SUFFIX_RE.match(norm, end)
        if date is not None:
            return date.end()  # 2023年, 6月30日, 6.30前
    return None


def _read_lead(
    scan: _Scan, pos: int, percent: int | None, status: ReportStatus | None
) -> tuple[int | None, ReportStatus | None]:
    """Read percents and status words at the head of the body."""
    norm = scan.norm
    for _ in range(4):
        pos = _skip_separators(norm, pos)
        if percent is None:
            m = _LEAD_PERCENT_RE.match(norm, pos)
            if m is not None:
                percent = _percent_of(m)
                scan.remove(pos, m.end())
                pos = m.end()
                continue
            m = _LEAD_BARE_PERCENT_RE.match(norm, pos)
            if m is not None:
                percent = _to_percent(m.group("bare"), float(m.group("bare")))
                scan.remove(pos, m.end())
                pos = m.end()
                continue
        if status is None:
            m = _LEAD_STATUS_RE.match(norm, pos)
            if m is not None and not _NEGATION_RE.search(norm, 0, m.start("word")):
                word_status = _STATUS_WORDS[m.group("word")]
                if word_status is not ReportStatus.done or _DONE_END_RE.match(norm, m.end()):
                    status = word_status
                    scan.remove(pos, m.end())
                    pos = m.end()
                    continue
        break
    return percent, status


def _join_note(original: str, start: int, removed: list[tuple[int, int]]) -> str:
    """The text from start with the removed spans cut out and the seams tidied."""
    pieces: list[str] = []
    pos = start
    for s, e in sorted(removed):
        if s > pos:
            pieces.append(original[pos:s])
        pos = max(pos, e)
    pieces.append(original[pos:])
    seps = _SEPARATORS + "　-—"
    note = ""
    for piece in pieces:
        if not note:
            note = piece.lstrip(seps)
            continue
        if not piece:
            continue
        if note[-1] in seps and piece[0] in seps:
            piece = piece.lstrip(seps)
        elif note[-1] not in seps and piece[0] not in seps:
            piece = " " + piece
        note += piece
    return note.strip().rstrip("、,，:：;；-—").strip()


def _standalone_percent(norm: str, ctx_start: int, m: re.Match[str]) -> int | None:
    """A percentage set apart by a space and ending its clause ("已召开推进会 30%") is the
    report's percent, unless the words before it name a rate or a change ("占比 46%")."""
    prefix = norm[ctx_start : m.start()]
    if not prefix or not prefix[-1].isspace():
        return None
    if _RATE_NOUN_RE.search(prefix) or _CHANGE_TAIL_RE.search(prefix):
        return None
    post = _PERCENT_POST_RE.match(norm, m.end())
    end = post.end() if post else m.end()
    if end < len(norm) and norm[end] not in _BREAKS:
        return None
    return len(prefix)


def check_length(text: str) -> None:
    """UserError when a message is longer than any report may be (the one home of the limit)."""
    if len(text) > MAX_REPORT_LENGTH:
        raise UserError("report.too_long", max=MAX_REPORT_LENGTH, length=len(text))


def check_percent(percent: int | None) -> None:
    """UserError when a percent is outside 0..100 (the one home of the range)."""
    if percent is not None and not 0 <= percent <= 100:
        raise UserError("report.bad_percent", value=f"{percent}%")


def parse_report_text(text: str, *, command: bool = False) -> ParsedReport:
    """Read item reference, percent, status, numbers and note from one progress message."""
    check_length(text)
    norm = fold_width(text, keep_comma=True)
    body = 0
    if command:
        cmd = re.match(r"\s*/\S+", norm)
        if cmd is not None:
            body = cmd.end()
    if not norm[body:].strip():
        raise UserError("report.empty")
    return _parse_body(text, norm, body, command=command, find_ref=True)


def _parse_body(
    text: str,
    norm: str,
    body: int,
    *,
    command: bool = False,
    find_ref: bool = True,
    bare_percent: bool = False,
    english: bool = False,
) -> ParsedReport:
    """Parse norm[body:] (text is the original, offsets alike); find_ref reads a leading item
    reference; bare_percent takes a bare number at the head as the percent."""
    scan = _Scan(norm)
    scan.barriers.append(body)

    # Item reference.
    item_ref: str | None = None
    pos = _skip_separators(norm, body)
    ref = _read_ref(norm, pos) if find_ref else None
    if ref is not None:
        item_ref, ref_end = ref
        scan.remove(pos, ref_end)
        pos = ref_end
    elif find_ref:
        hash_m = _HASH_REF_RE.search(norm, body)
        if hash_m is not None:
            item_ref = str(int(hash_m.group("n")))
            scan.remove(hash_m.start(), hash_m.end())

    # Command mode: a bare second number is the percent.
    percent: int | None = None
    if (command and ref is not None) or bare_percent:
        bare = _BARE_HEAD_RE.match(norm, pos)
        if bare is not None and float(bare.group("n")) <= 100:
            percent = _to_percent(bare.group("n"), float(bare.group("n")))
            scan.remove(bare.start("n"), bare.end())
            pos = bare.end()

    # Percent and status at the head of the body.
    status: ReportStatus | None = None
    percent, status = _read_lead(scan, pos, percent, status)

    # Numbers; the first percentage after a progress word is the report's percent.
    found: list[tuple[int, int, int, float, str]] = []  # (context start, start, end, value, unit)
    for m in _QUANTITY_RE.finditer(norm, body):
        if scan.overlaps(m.start(), m.end()):
            continue
        raw, value, unit = _number_value(m)
        skip_end = _skip_reason(norm, m, raw, unit)
        if skip_end is not None or value is None or not math.isfinite(value):
            scan.barriers.append(skip_end if skip_end is not None else m.end())
            continue
        ctx_start, ctx_end = _clause_start(scan, m.start())
        if unit == "%" and percent is None and not norm[: m.start()].endswith("个"):
            progress_start = _progress_start(norm[ctx_start : m.start()])
            if progress_start is None:
                progress_start = _standalone_percent(norm, ctx_start, m)
            if progress_start is not None:
                raw_percent = (
                    f"百分之{raw}"
                    if m.group("per") is not None
                    else raw
                    if m.group("tenths") or m.group("half")
                    else f"{raw}%"
                )
                percent = _to_percent(raw_percent, value)
                post = _PERCENT_POST_RE.match(norm, m.end())
                scan.remove(ctx_start + progress_start, post.end() if post else m.end())
                continue
        found.append((ctx_start, m.start(), m.end(), value, unit))
        scan.barriers.append(m.end())

    # A lone percentage that names no rate or change is the report's percent, wherever it
    # stands: voice input runs the words together ("目前是百分之六十左右吧").
    if percent is None and not command:
        shares = [f for f in found if f[4] == "%"]
        if len(shares) == 1:
            ctx_start, start, end, value, _ = shares[0]
            prefix = norm[ctx_start:start]
            if (
                not norm[:start].endswith("个")  # "四个100%" names a measure
                and not norm.startswith("的", end)  # "65%的学校": a share of something else
                and not _RATE_NOUN_RE.search(prefix)
                and not _CHANGE_TAIL_RE.search(prefix)
                and not _RATE_NOUN_RE.match(norm, end)
                and 0 <= value <= 100
            ):
                percent = _to_percent(norm[start:end], value)
                post = _PERCENT_POST_RE.match(norm, end)
                scan.remove(start, post.end() if post else end)
                found.remove(shares[0])

    numbers: list[NumberMention] = []
    starts = sorted([s for s, _ in scan.removed] + [f[1] for f in found])
    for ctx_start, start, end, value, unit in found:
        ctx_end = start
        while ctx_end > ctx_start and norm[ctx_end - 1] in " \t":
            ctx_end -= 1
        stop = min([s for s in starts if s >= end], default=len(norm))
        after_end = end
        while (
            after_end < min(stop, len(norm))
            and after_end - end < 8
            and norm[after_end] not in _BREAKS
            and not norm[after_end].isdigit()
        ):
            after_end += 1
        numbers.append(
            NumberMention(
                value=value,
                unit=unit,
                context=text[ctx_start:ctx_end],
                text=text[ctx_start:after_end].strip(),
                after=text[end:after_end],
            )
        )

    # A status word standing as a clause of its own anywhere in the text.
    if status is None:
        masked = list(norm)
        for s, e in scan.removed:
            masked[s:e] = "\n" * (e - s)
        for clause in _CLAUSE_RE.finditer("".join(masked), body):
            word_m = (
                _CLAUSE_STATUS_RE.fullmatch(clause.group())
                or _CLAUSE_END_STATUS_RE.search(clause.group())
                or _CLAUSE_END_DONE_RE.search(clause.group())
            )
            if word_m is None or _NEGATION_RE.search(clause.group(), 0, word_m.start("word")):
                continue
            word_status = _STATUS_WORDS[word_m.group("word")]
            if (
                word_status is not ReportStatus.done
                or _DONE_END_RE.match(norm, clause.end())
                or word_m.re is _CLAUSE_END_DONE_RE
            ):
                status = word_status
                break

    if status is None and english:
        for m in _EN_STATUS_RE.finditer(norm, body):
            if not scan.overlaps(m.start(), m.end()):
                status = _EN_STATUS_WORDS[" ".join(m.group().lower().split())]
                scan.remove(m.start(), m.end())
                break

    if status is ReportStatus.done and percent is not None and percent < 100:
        status = None  # "已完成60%", "60% 已完成": a share of the work done, not the item
    if status is ReportStatus.not_started and percent:
        raise UserError("report.not_started_percent", percent=percent)
    if status is ReportStatus.not_started:
        percent = None  # "未启动" never carries a percent
    if status is ReportStatus.done and percent is None:
        percent = 100
    return ParsedReport(
        item_ref=item_ref,
        percent=percent,
        status=status,
        numbers=numbers,
        note=_join_note(text, body, scan.removed),
    )


# --- matching to targets ----------------------------------------------------------------


def _cjk_bigrams(s: str) -> set[str]:
    """The pairs of adjacent Chinese characters in s."""
    result: set[str] = set()
    for run in re.findall(r"[\u4e00-\u9fff]+", s):
        result.update(run[i : i + 2] for i in range(len(run) - 1))
    return result


_STOP_RE = re.compile(_alternation(_STOP_WORDS))
# A number said of the future is a plan, not a value reached ("预计再认定3个").
_FUTURE_RE = re.compile(
    r"预计|计划|将|拟|争取|力争|预期|打算|准备|再|剩下|剩余|尚有|仍有|还差|还剩|还有"
)


def _meaningful_bigrams(s: str) -> set[str]:
    """The character pairs of s once parentheticals and stop words are cut out."""
    return _cjk_bigrams(_STOP_RE.sub(" ", _PARENTHESES_RE.sub(" ", s)))


_LOOSE_UNITS = (frozenset({"个", "所", "家"}), frozenset({"人", "名", "位"}))


def _units_match(mention: NumberMention, target: TargetLike, *, loose: bool) -> bool:
    """Whether the mention's unit fits the target's (loose: also no unit, or a sibling unit)."""
    if mention.unit == target.unit:
        return True
    if {mention.unit, target.unit} <= _PERCENT_UNITS and target.comparator in (
        "decrease",
        "increase",
    ):
        return True
    if not loose:
        return False
    if not mention.unit:
        return True
    return any(mention.unit in g and target.unit in g for g in _LOOSE_UNITS)


def _best_assignment(scores: list[list[Fraction | None]], width: int) -> list[tuple[int, int]]:
    """Pairs (row, column) maximizing the total score, one per row and column; ties go first."""
    live = [i for i, row in enumerate(scores) if any(s is not None for s in row)]
    scores = [scores[i] for i in live]
    rows = len(scores)
    if width > 10 or rows > 40:
        pairs = sorted(
            (
                (-s, i, j)
                for i, row in enumerate(scores)
                for j, s in enumerate(row)
                if s is not None
            ),
        )
        used_rows: set[int] = set()
        used_cols: set[int] = set()
        chosen: list[tuple[int, int]] = []
        for _, i, j in pairs:
            if i not in used_rows and j not in used_cols:
                used_rows.add(i)
                used_cols.add(j)
                chosen.append((live[i], j))
        return chosen

    @cache
    def best(i: int, used: int) -> tuple[Fraction, tuple[tuple[int, int], ...]]:
        if i == rows:
            return Fraction(0), ()
        options: list[tuple[Fraction, tuple[tuple[int, int], ...]]] = []
        for j, score in enumerate(scores[i]):
            if score is None or used >> j & 1:
                continue
            sub_score, sub_pairs = best(i + 1, used | 1 << j)
            options.append((score + sub_score, ((i, j), *sub_pairs)))
        options.append(best(i + 1, used))
        top = max(o[0] for o in options)
        return next(o for o in options if o[0] == top)

    return [(live[i], j) for i, j in best(0, 0)[1]]


def match_targets(numbers: Sequence[NumberMention], targets: Sequence[T]) -> list[tuple[T, float]]:
    """Pair reported numbers with the item's targets they measure, as (target, value).

    Rules:
    - A mention matches a target when its unit fits (same unit; % and 个百分点 for
      decrease/increase targets; no unit; 个/所/家 or 人/名/位 alike) and the words around it
      share a meaningful part of the target's metric: a pair of adjacent Chinese characters
      left after cutting out stop words (全市, 完成, 推进, 工作, 建设, 学校, 教育, ...) and
      parentheticals ("(不含购买学位)").
    - Shared pairs weigh 1/n where n is the number of the item's targets containing them, so
      a distinctive word (普惠) outweighs a common one (占比); words just after the number
      weigh half. Mentions and targets are paired to maximize the total weight, one to one;
      ties go to the earlier mention and the earlier target.
    - A number said of the future ("预计…", "计划…", "再认定3个") measures nothing yet.
    - An item with exactly one target and no such match takes the only mention whose unit
      is the target's own (or % / 个百分点 for decrease/increase targets): "已培育12个".
      Numbers without a unit are never matched on the unit alone.
    """
    if not numbers or not targets:
        return []
    target_bigrams = [_meaningful_bigrams(t.metric) for t in targets]
    df: dict[str, int] = {}
    for bigrams in target_bigrams:
        for b in bigrams:
            df[b] = df.get(b, 0) + 1

    numbers = [m for m in numbers if not _FUTURE_RE.search(m.context)]
    scores: list[list[Fraction | None]] = []
    for mention in numbers:
        before = _meaningful_bigrams(mention.context)
        after = _meaningful_bigrams(mention.after) - before
        row: list[Fraction | None] = []
        for target, bigrams in zip(targets, target_bigrams, strict=True):
            score = sum((Fraction(1, df[b]) for b in before & bigrams), Fraction(0)) + sum(
                (Fraction(1, 2 * df[b]) for b in after & bigrams), Fraction(0)
            )
            ok = score > 0 and _units_match(mention, target, loose=True)
            row.append(score if ok else None)
        scores.append(row)

    pairs = _best_assignment(scores, len(targets))
    if not pairs and len(targets) == 1:
        only = [i for i, m in enumerate(numbers) if _units_match(m, targets[0], loose=False)]
        if len(only) == 1:
            pairs = [(only[0], 0)]
    pairs.sort(key=lambda p: p[1])
    return [(targets[j], numbers[i].value) for i, j in pairs]
