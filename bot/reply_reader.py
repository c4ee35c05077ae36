"""What a chat message is: small talk, a question about an item, or reports on one or more items.

`read_message` finds every item reference in a message (anywhere, in every common form),
splits the message into one part per item or group of items, and reads each part with the
progress parser. It knows nothing of the plan or the sender: `bot.services.intake` decides
which items are meant and whether the sender may report on them.

Item references: `9 ...` at the start of the message or of a line or clause, `9、` `9.` `9-`
`9：`, `【9】`, `#9`, `9号`, `九号`, `第9项`, `第九项`, `第二十六项`, `9项`, `关于第10项…`, and
groups `9、10两项…`, `24、25、26三项均…`, `9和10都…`, `第9、10项…`. After a first reference,
a bare number followed by a percent or a status word starts the next part (`9 60% 10 30%`).
A number right before a unit or a date word (`3个园所`, `6月底`) is never a reference.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass, field

from bot.cn_numbers import cn_int, fold_width
from bot.i18n import UserError
from bot.progress_parser import (
    _BARE_REF_END,
    _NOT_QUANTITY,
    _PERCENT_TOKEN,
    _REF_END,
    _STATUS_ALT,
    ParsedReport,
    _parse_body,
    _read_ref,
    check_length,
)

__all__ = ["MessageKind", "Part", "ReadMessage", "read_message"]


class MessageKind(enum.StrEnum):
    """What a message is."""

    report = "report"  # progress on one or more items (or on the item the context gives)
    question = "question"  # "第9项进展怎么样了": the status of the items named
    smalltalk = "smalltalk"  # "你好", "收到", "谢谢", "👍": nothing to record
    unclear = "unclear"  # no item, no figure, no status, no progress words


@dataclass(frozen=True)
class Part:
    """One part of a message: the items it names (none: the context decides) and what it says."""

    refs: tuple[str, ...]
    report: ParsedReport
    bare_number: int | None = None  # "9 75 主体完工": a number that may or may not be a percent


@dataclass(frozen=True)
class ReadMessage:
    """A message as read: its kind, its parts and, for /report, on whose behalf."""

    kind: MessageKind
    parts: tuple[Part, ...] = ()
    on_behalf: str | None = None  # the name after @ in `/report 9 60% @张敏`

    @property
    def refs(self) -> tuple[str, ...]:
        """Every item reference of the message, in order."""
        return tuple(ref for part in self.parts for ref in part.refs)

    @property
    def bare_number(self) -> int | None:
        """The first number that may or may not be a percent, or None."""
        return next((p.bare_number for p in self.parts if p.bare_number is not None), None)


# --- vocabulary -------------------------------------------------------------------------

_CN = "零〇一二两三四五六七八九十百"
_NUM = rf"(?:\d{{1,4}}|[{_CN}]{{1,5}})"
_LIST_SEP = r"\s*(?:[、,，/和及与跟]|以及)\s*"
_COUNT = r"(?:[两二三四五六七八九十]|\d{1,2})\s*(?:项|个事项|个项目|件|条)"
_GROUP_TAIL = (
    r"(?=\s*(?:都|均|全部|全都|各|也|同时|已|已经|完成|推进|正在|进度|进展|目前|[:：]|"
    rf"{_STATUS_ALT}))"
)
# Words that may stand right before a reference inside a sentence ("关于第10项", "和9号").
_LEAD_IN = (
    "关于", "对于", "针对", "其中", "另外", "还有", "以及", "那个", "就是", "和", "及", "与", "的",
    "然后", "再就是",
)  # fmt: skip
_LEAD_IN_RE = re.compile(r"\s*(?:" + "|".join(_LEAD_IN) + r")?\s*")
_REF_END_Q = _REF_END[:-1] + r"|事项|情况|现在|目前|怎么|如何|咋|到哪|到了|什么|还|仍|正在)"

_STRONG_RES: tuple[re.Pattern[str], ...] = (
    # 第9项, 第九项, 第9、10项, 第二十六条
    re.compile(
        rf"第\s*(?P<list>{_NUM}(?:{_LIST_SEP}第?\s*{_NUM})*)\s*(?:项|条|号(?![文楼线院令]))"
    ),
    # 【9】, [9], (9), 【第9项】
    re.compile(
        rf"[【\[（(]\s*第?\s*(?P<list>{_NUM}(?:{_LIST_SEP}{_NUM})*)\s*[项号条]?\s*[】\]）)]"
    ),
    # #9
    re.compile(r"(?<![0-9A-Za-z&])#\s*(?P<list>\d{1,4})(?!\d)"),
)
# References that count only where no Chinese word runs into them ("已完成3项" is a count).
_FREE_RES: tuple[re.Pattern[str], ...] = (
    # 9、10两项都…, 24、25、26三项均…, 9和10都…
    re.compile(rf"(?P<list>{_NUM}(?:{_LIST_SEP}{_NUM}(?!\d))+)\s*(?:{_COUNT})?{_GROUP_TAIL}"),
    # 9号, 九号 (not 9号文件, not 6月9号)
    re.compile(
        rf"(?P<list>{_NUM})\s*号(?!\s*(?:前|后|之前|以前|左右|文|楼|线|院|令|房|馆|楼|门|店|码))"
        + _REF_END_Q[:-1]
        + r"|都|均|也|和|及|与)"
    ),
    # 9项, 9、10项, 二十二项 (not 三项任务, a count)
    re.compile(rf"(?P<list>\d{{1,4}}(?:{_LIST_SEP}\d{{1,4}})*)\s*项" + _REF_END_Q),
    re.compile(rf"(?P<list>[{_CN}]{{1,5}})\s*项" + _REF_END_Q),
)
_EN_WORDS = r"done|completed|finished|in progress|ongoing|delayed|behind|not started"
# A number followed by a percent or a status: "10 30%", "10：完成", "9-75%", "10 也是70%".
_NEXT_RE = re.compile(
    rf"(?P<list>\d{{1,3}})(?![\d.]){_NOT_QUANTITY}\s*[:：、\-—.]?\s*(?:也是|也|是|为|都|均)?\s*"
    rf"(?=(?:{_PERCENT_TOKEN})|(?:进度|进展|已|完成|{_STATUS_ALT}|{_EN_WORDS}))",
    re.IGNORECASE,
)
# After a first reference, a number standing alone before words may start the next part.
_SEQ_RE = re.compile(rf"(?<=\s)(?P<list>\d{{1,3}})(?![\d.]){_NOT_QUANTITY}\s+(?=[\u4e00-\u9fff])")
_CN_ITEM_RE = re.compile(rf"(?P<list>[{_CN}]{{1,5}})\s*项(?!目|都|均|任务|工作|全|各|共|合计)")
# "item 22" (English).
_ITEM_EN_RE = re.compile(r"(?<![A-Za-z])item\s*#?\s*(?P<list>\d{1,4})(?!\d)", re.IGNORECASE)
# In a question, any number that is not a quantity or a date names an item ("查一下24").
_ASKED_NUMBER_RE = re.compile(
    rf"(?<![\d.])(?P<list>\d{{1,3}})(?![\d.%])(?:\s*[项号]|{_NOT_QUANTITY})"
)
# Where a new clause begins: a bare reference may stand there.
_STARTS_RE = re.compile(r"[\n;；。!！:：]\s*")

_QUESTION_RE = re.compile(
    r"怎么样|怎样了|咋样|如何|什么情况|啥情况|什么进展|什么进度|啥进度|什么状态|啥状态|什么阶段|"
    r"哪一步|到哪|到什么程度|多少|"
    r"完成了吗|完成没|好了吗|好了没|有进展吗|进展呢|情况呢|是否|有没有|是不是|谁负责|报过|"
    r"报了没|还没报|没报|^\s*(?:查一下|查下|查询|查看|看下|看一下|看看)|呢\s*$|吗\s*$|[?？]\s*$|"
    r"^\s*(?:status|how)\b|\bhow is\b|\bstatus of\b",
    re.IGNORECASE,
)
_SMALLTALK = (
    "你好", "您好", "大家好", "早上好", "上午好", "中午好", "下午好", "晚上好", "早安", "晚安",
    "哈喽", "嗨", "在吗", "在不在", "在么", "在", "收到", "已收到", "好的", "好滴", "好嘞",
    "好", "行", "可以", "嗯嗯", "嗯", "哦", "噢", "谢谢", "多谢", "感谢", "谢啦", "谢了",
    "辛苦了", "辛苦", "取消", "算了", "不用了", "明白了", "明白", "了解", "知道了", "没问题",
    "马上弄", "马上办", "这就办", "马上", "稍等", "哈哈", "呵呵", "老师", "领导", "主任",
    "您", "你", "啊", "呀", "哈", "啦", "了", "的", "吧", "呢", "哦", "哟",
    "hello", "hi", "hey", "thanks", "thankyou", "thx", "ok", "okay", "gotit", "sure", "noted",
    "good", "morning", "great", "cancel",
)  # fmt: skip
_SMALLTALK_RE = re.compile("|".join(sorted(map(re.escape, _SMALLTALK), key=len, reverse=True)))
_PROGRESS_WORDS_RE = re.compile(
    r"完成|完工|竣工|推进|开展|召开|启动|验收|建成|落实|部署|印发|制定|出台|开工|招标|施工|"
    r"进展|进度|实施|组织|举办|培训|检查|整改|上报|报送|审核|审批|签订|改造|建设|投入|拨付|"
    r"采购|评估|督导|调研|会议|方案|文件|通知|已经|正在|基本|初步|预计|计划|办结|滞后|延期|"
    r"受阻|未启动|progress|started|meeting|done|finished|completed|delayed"
)
_LONE_NUMBER_RE = re.compile(r"\s*(?P<n>\d{1,3})\s*[.。!！]?\s*")
_AT_RE = re.compile(r"@\s*(?P<name>[^\s@，,;；]+)")


def _is_smalltalk(norm: str) -> bool:
    """Whether the message is only greetings, thanks, acknowledgements and emoji."""
    if any(ch.isdigit() for ch in norm):
        return False
    kept = "".join(
        ch
        for ch in norm.lower()
        if unicodedata.category(ch)[0] in "LN" and not (ch >= "\U0001f000")
    )
    kept = kept.replace(" ", "")
    return not _SMALLTALK_RE.sub("", kept)


def _numbers(raw: str) -> tuple[str, ...]:
    """The item numbers of a reference list ("9、10" -> ("9", "10"))."""
    out = []
    for token in re.split(_LIST_SEP, raw):
        token = token.strip().lstrip("第").strip()
        value = int(token) if token.isdigit() else cn_int(token)
        if value:
            out.append(str(value))
    return tuple(out)


def _free_position(norm: str, start: int, body: int) -> bool:
    """Whether a reference may start here: not inside a Chinese word, unless after 关于 etc."""
    if start <= body:
        return True
    prev = norm[start - 1]
    if prev.isdigit() or prev in ".第月年日号/":
        return False
    if "\u4e00" <= prev <= "\u9fff":
        return any(norm[body:start].endswith(w) for w in _LEAD_IN)
    return True


@dataclass
class _Ref:
    start: int
    end: int
    refs: tuple[str, ...]
    labels: bool = False  # a section label such as 三.2
    weak: bool = False  # a bare number taken for a reference because a figure follows it


@dataclass
class _Found:
    refs: list[_Ref] = field(default_factory=list)

    def add(self, ref: _Ref) -> None:
        if ref.refs and not any(ref.start < r.end and r.start < ref.end for r in self.refs):
            self.refs.append(ref)


@functools.lru_cache(maxsize=32)
def _code_re(codes: tuple[str, ...]) -> re.Pattern[str] | None:
    """References that carry a plan code: 民生3, J3, j 3, 民生第3项, 民生3、4 (longest code
    first, so 要点B3 is not read as 要点 B3)."""
    if not codes:
        return None
    alternatives = "|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True))
    return re.compile(
        rf"(?<![A-Za-z])(?P<code>{alternatives})\s*[#＃]?\s*第?\s*"
        rf"(?P<list>\d{{1,4}}(?:\s*[、,，和及与]\s*\d{{1,4}})*)(?!\d)\s*(?:项|号)?",
        re.IGNORECASE,
    )


def _find_refs(norm: str, body: int, codes: tuple[str, ...] = ()) -> list[_Ref]:
    """Every item reference in norm[body:], in order, none overlapping. A reference with a
    plan code comes out as CODE+NUMBER ("民生3"), in the code's own spelling."""
    found = _Found()
    coded = _code_re(codes)
    if coded is not None:
        spelled = {c.casefold(): c for c in codes}
        for m in coded.finditer(norm, body):
            code = spelled.get(m.group("code").casefold(), m.group("code"))
            numbers = re.findall(r"\d{1,4}", m.group("list"))
            found.add(_Ref(m.start(), m.end(), tuple(f"{code}{int(n)}" for n in numbers)))
    for regex in _STRONG_RES:
        for m in regex.finditer(norm, body):
            found.add(_Ref(m.start(), m.end(), _numbers(m.group("list"))))
    for regex in _FREE_RES:
        for m in regex.finditer(norm, body):
            if _free_position(norm, m.start(), body):
                found.add(_Ref(m.start(), m.end(), _numbers(m.group("list"))))
    for m in _ITEM_EN_RE.finditer(norm, body):
        found.add(_Ref(m.start(), m.end(), _numbers(m.group("list"))))
    # A bare reference at the start of the message, a line or a sentence.
    starts = [body] + [m.end() for m in _STARTS_RE.finditer(norm, body)]
    for start in starts:
        pos = start
        lead = _LEAD_IN_RE.match(norm, pos)
        if lead is not None:
            pos = lead.end()
        ref = _read_ref(norm, pos)
        if ref is not None:
            value, end = ref
            found.add(_Ref(pos, end, (value,), labels="." in value))
            continue
        cn = _CN_ITEM_RE.match(norm, pos)
        if cn is not None:  # "二十二项我们这边…" (not "三项都…", a count)
            found.add(_Ref(pos, cn.end(), _numbers(cn.group("list"))))
            continue
        colon = _NEXT_RE.match(norm, pos)
        if colon is not None:  # "9-75%", "10：55%"
            found.add(_Ref(pos, colon.end("list"), _numbers(colon.group("list"))))
    found.refs.sort(key=lambda r: r.start)
    # After a first reference: "9 60% 10 30%".
    if found.refs:
        first = found.refs[0].end
        for m in _NEXT_RE.finditer(norm, first):
            prev = norm[m.start() - 1] if m.start() else " "
            if prev in " \t\n,，、;；。" and not re.match(r"\s*%", norm[m.end("list") :]):
                found.add(_Ref(m.start(), m.end("list"), _numbers(m.group("list")), weak=True))
        # A list typed with spaces: "5 70% 6 近视率已下降0.2个百分点 7 推进中".
        for m in _SEQ_RE.finditer(norm, first):
            number = int(m.group("list"))
            before = [r for r in found.refs if r.end <= m.start()]
            last = before[-1] if before else None
            if (
                last is not None
                and not last.labels
                and number > max(_ref_number(x) for x in last.refs)
                and norm[last.end : m.start()].strip()
            ):
                found.add(_Ref(m.start(), m.end("list"), (str(number),), weak=True))
        found.refs.sort(key=lambda r: r.start)
    return _merge(norm, found.refs)


def _ref_number(ref: str) -> int:
    """The number of a reference ("9", "民生3" -> 3); 0 for a section label."""
    digits = re.search(r"\d+$", ref)
    return int(digits.group()) if digits and "." not in ref else 0


_TRAILING_LINK_RE = re.compile(r"\s*(?:然后|还有|另外|以及|再就是|和|及|与)\s*$")
_BETWEEN_RE = re.compile(r"[\s、,，和及与]*")


def _merge(norm: str, refs: list[_Ref]) -> list[_Ref]:
    """Join references with nothing but a list separator between them into one group
    ("第一项、第三项已完成"); a number right after a reference with only a space between
    is not a reference of its own but the first's figure, which cannot be told (UserError)."""
    out: list[_Ref] = []
    for ref in refs:
        if out and _BETWEEN_RE.fullmatch(norm, out[-1].end, ref.start):
            between = norm[out[-1].end : ref.start]
            if between.strip() or not ref.weak:
                last = out.pop()
                out.append(_Ref(last.start, ref.end, last.refs + ref.refs))
                continue
            raise UserError("report.ambiguous_numbers", text=norm[out[-1].start : ref.end + 8])
        out.append(ref)
    return out


_PREFIX_NOISE_RE = re.compile(
    r"^[\s,，.。:：;；、!！\-—]*(?:(?:关于|对于|针对|那个|就是|嗯|报告|汇报|领导|主任|老师|"
    r"您好|你好)[\s,，.。:：;；、!！\-—]*)*$"
)


def read_message(
    text: str,
    *,
    command: bool = False,
    english: bool = False,
    bare_is_percent: bool | None = None,
    codes: tuple[str, ...] = (),
) -> ReadMessage:
    """Read what a message is and what each of its parts says.

    codes: the plan codes a reference may carry (民生3, J3).

    command: the text after a /report command (a bare number after the item is the percent,
    `@name` names the person reported for). bare_is_percent: the answer to an earlier
    "is 75 a percent?" question (None: not asked yet, so such a number is flagged).
    """
    check_length(text)
    on_behalf: str | None = None
    if command:
        at = _AT_RE.search(text)
        if at is not None:
            on_behalf = at.group("name")
            text = text[: at.start()] + " " * (at.end() - at.start()) + text[at.end() :]
    norm = fold_width(text, keep_comma=True)
    if not norm.strip():
        raise UserError("report.empty")
    if not command and _is_smalltalk(norm):
        return ReadMessage(MessageKind.smalltalk)

    lone = _LONE_NUMBER_RE.fullmatch(norm)
    if lone is not None and not command:
        # "80" alone: an item number or a figure for the item in context; the service decides
        report = ParsedReport(item_ref=None, percent=None, status=None, note=norm.strip())
        return ReadMessage(MessageKind.report, (Part((), report, int(lone.group("n"))),))
    question = not command and _QUESTION_RE.search(norm) is not None
    try:
        refs = _find_refs(norm, 0, codes)
    except UserError:
        if not question:
            raise
        refs = []
    if question and not refs:
        refs = [
            _Ref(m.start(), m.end(), _numbers(m.group("list")))
            for m in _ASKED_NUMBER_RE.finditer(norm)
        ]
    if question and refs:
        first = _parse_body(text, norm, refs[0].end, find_ref=False, english=english)
        if first.percent is None or norm.rstrip().endswith(("?", "？")):
            asked = tuple(
                Part(r.refs, ParsedReport(item_ref=None, percent=None, status=None)) for r in refs
            )
            return ReadMessage(MessageKind.question, asked)

    percent_mode = command if bare_is_percent is None else bare_is_percent
    parts: list[Part] = []
    if not refs:
        report = _parse_body(text, norm, 0, find_ref=False, english=english)
        parts.append(Part((), report))
    else:
        prefix = norm[: refs[0].start]
        for i, ref in enumerate(refs):
            end = refs[i + 1].start if i + 1 < len(refs) else len(norm)
            tail = _TRAILING_LINK_RE.search(norm, ref.end, end)
            if tail is not None and i + 1 < len(refs):
                end = tail.start()  # "…百分之八十 然后二十五项…": 然后 belongs to neither
            seg_text, seg_norm = text[ref.end : end], norm[ref.end : end]
            if i == 0 and not _PREFIX_NOISE_RE.match(prefix):
                # "华侨小学主体完工 #9 60%": words before the first reference belong to it
                seg_text = text[: ref.start] + " " + seg_text
                seg_norm = prefix + " " + seg_norm
            parts.append(_read_part(ref.refs, seg_text, seg_norm, percent_mode, bare_is_percent,
                                    english))  # fmt: skip

    if not command and not refs:
        report = parts[0].report
        signal = (
            report.percent is not None
            or report.status is not None
            or report.numbers
            or _PROGRESS_WORDS_RE.search(norm.lower())
        )
        if not signal:
            return ReadMessage(MessageKind.unclear)
    return ReadMessage(MessageKind.report, tuple(parts), on_behalf)


def _read_part(
    refs: tuple[str, ...],
    text: str,
    norm: str,
    percent_mode: bool,
    bare_is_percent: bool | None,
    english: bool,
) -> Part:
    """Read one part of a message (the text after its reference)."""
    head = len(norm) - len(norm.lstrip(" \t:：、-—.,，;；)）】]"))
    report = _parse_body(
        text, norm, head, find_ref=False, bare_percent=percent_mode, english=english
    )
    bare: int | None = None
    if bare_is_percent is None and not percent_mode and report.percent is None:
        m = re.compile(rf"[\s:：、\-—]*(?P<n>\d{{1,3}})(?![\d.]){_NOT_QUANTITY}{_BARE_REF_END}")
        found = m.match(norm)
        if found is not None and int(found.group("n")) <= 100:
            bare = int(found.group("n"))
    return Part(refs, report, bare)
