"""Quantitative targets in an item's text: "新增学位超1万个", "占比50%以上", "培育15个集团".

Every number followed by a known unit is a candidate. Its comparator comes from the words
right before it (超, 不少于, 下降, 控制在, ...) or right after it (以上, 以内, ...); the metric
is the noun phrase before it, trimmed of filler verbs, years and baselines ("比2022年").
Counts without a comparator ("培育15个市级优质教育集团", "建成示范校30所") are targets only
when an action verb (培育, 新建, 建成, 举办, ...) asks for them; see extract_targets.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from bot.cn_numbers import NUMBER_PATTERN, fold_width, parse_number
from bot.importer.model import ParsedTarget
from bot.units import UNITS

__all__ = ["extract_targets"]

# --- vocabulary -------------------------------------------------------------------------


def _words(spaced: str) -> tuple[str, ...]:
    """The space-separated words of a word list."""
    return tuple(spaced.split())


# Comparator words written before the number. Longer words win over their prefixes.
_PRE_COMPARATOR_TABLE: tuple[tuple[str, str], ...] = (
    (">=", "不少于 不低于 不小于 至少 最少 达到 达 实现 保持在 稳定在 维持在 保持 巩固在"),
    (">=", "提高到 提高至 提升到 提升至 增长到 增长至 增加到 增加至 上升到 上升至 增至"),
    (">", "超过 超出 超 多于 高于 大于 突破"),
    ("<=", "不超过 不高于 不多于 不大于 控制在 控制到 压缩到"),
    ("<=", "下降到 下降至 降低到 降低至 减少到 减少至 降到 降至 压减到 压减至 压降到 压降至"),
    ("<", "低于 少于 小于"),
    ("decrease", "下降 降低 减少 压减 压降 缩减 减"),
    ("increase", "提高 提升 增长 增加 上升 增幅 增速"),
)
# Comparator words written after the number and unit.
_POST_COMPARATOR_TABLE: tuple[tuple[str, str], ...] = (
    (">=", "及以上 或以上 以上"),
    ("<=", "及以下 或以下 以下 以内 之内"),
    ("=", "左右"),
)
_PRE_COMPARATORS = {w: cmp for cmp, words in _PRE_COMPARATOR_TABLE for w in _words(words)}
_POST_COMPARATORS = {w: cmp for cmp, words in _POST_COMPARATOR_TABLE for w in _words(words)}

# Verbs that ask for a count: "培育15个...", "新建幼儿园20所".
_COUNT_VERBS = _words(
    "培育 新建 新增 建成 建设 创建 打造 评选 评定 认定 遴选 选树 推出 招聘 "
    "招收 引进 培训 培养 举办 开展 组织 完成 实施 改造 改扩建 新改扩建 扩建 改建 新改建 修建 开设 "
    "开办 增设 设立 组建 建立 表彰 奖励 资助 发放 投入 安排 筹集 落实 提供 "
    "接收 吸纳 派出 选派 创作 出版 编写 征集 配备 配置 购置 配送 更新 录制 立项 命名"
)
# Verbs that carry no meaning of their own in a metric ("完成新改扩建" -> "新改扩建").
_FILLER_VERBS = ("完成", "实现", "落实", "确保", "力争", "争取", "达到", "努力", "推动", "促进")

_UNITS = UNITS  # shared with the progress parser (bot/units.py)
_PERCENT_UNITS = frozenset({"%", "‰", "个百分点"})
_BOUNDS = frozenset({">=", ">", "<=", "<"})
# Explicit bounds that make a lone 一 a real number ("至少一所").
_STRICT_BOUNDS = frozenset(
    ["不少于", "不低于", "不小于", "至少", "最少", "超过", "多于", "不超过", "不多于", "少于"]
)

# A bare percentage ("巩固率99%") is a target only after a word like these.
_RATE_NOUN_RE = re.compile(r"(?:率|比例|占比|比重|覆盖面|份额)$")

# --- regexes ----------------------------------------------------------------------------


def _alternation(words: Iterable[str]) -> str:
    """Regex alternation of words, longest first."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# Clause boundaries: a metric never reaches back past one of these.
_CLAUSE_END = "，,。；;：:！？!?\n"
_SENTENCE_END = "。；;！？!?\n"
_SENTENCE_END_RE = re.compile(f"[{re.escape(_SENTENCE_END)}]")
# How far back from a number its clause is read: a metric and its comparator stand right
# before the number, and reading a whole clause again for every number in it would take time
# quadratic in its length (a paragraph of "1个1个1个..." with no comma).
_MAX_CLAUSE = 100
# A number token longer than this is not a number but a run of digits or numerals; it is
# masked before quantities are looked for, because the quantity pattern, failing to find a
# unit after such a run, would try again from every position in it (quadratic time).
_MAX_NUMBER_CHARS = 24
_NUMBER_RE = re.compile(NUMBER_PATTERN)
_UNIT_ALT = "|".join(f"(?:{pattern})" for pattern, _ in _UNITS)

# One quantity: a percentage in words (百分之五十) or a number with a unit.
_QUANTITY_RE = re.compile(
    rf"(?P<per>百分之|千分之)[ \t]*(?P<pnum>{NUMBER_PATTERN})"
    rf"|(?P<num>{NUMBER_PATTERN})[ \t]*(?P<approx>多|余)?[ \t]*(?P<unit>{_UNIT_ALT})"
)
_POST_RE = re.compile(rf"[ \t]*(?P<post>{_alternation(_POST_COMPARATORS)})")

# "比2022年", "较上年", "同比": a baseline between the metric and the comparator.
_BASELINE = (
    r"(?:(?:比|较|与)(?:\d{4}|[〇零一二三四五六七八九]{4})年(?:度|末|底)?(?:相比)?"
    r"|(?:比|较)(?:上|去|前|上一)年(?:度|末|底|同期)?|同比|环比|年均"
    rf"|由{NUMBER_PATTERN}(?:{_UNIT_ALT})?)"
)
# Words between the metric and the comparator that belong to neither.
_LEAD_FILLER = (
    r"(?:力争|争取|确保|努力|要|将|再|分别|累计|共计|共|总计|合计|进一步|逐步|"
    r"稳步|总体|全年|年内|每年|年度)"
)
_NUM_FILLER = r"(?:了|为|约|共|累计|近)"
_PRE_RE = re.compile(
    rf"(?P<baseline>{_BASELINE})?[ \t]*(?:{_LEAD_FILLER}[ \t]*)*"
    rf"(?P<cmp>{_alternation(_PRE_COMPARATORS)})?[ \t]*(?:{_NUM_FILLER}[ \t]*)?$"
)
_VERB_END_RE = re.compile(rf"(?P<verb>{_alternation(_COUNT_VERBS)})(?:{_LEAD_FILLER})*$")
_VERB_ANY_RE = re.compile(_alternation(_COUNT_VERBS))
# Words that make a clause describe what exists rather than ask for something.
_STATIVE_RE = re.compile(r"共有|现有|拥有|已有|涉及|包括|覆盖")
# "不低于公用经费总额的5%": the bound comes before the base of a share.
_SHARE_RE = re.compile(
    "(?P<cmp>"
    + _alternation(w for w, c in _PRE_COMPARATORS.items() if c in _BOUNDS and len(w) > 1)
    + rf")[^{_CLAUSE_END}]+的$"
)
_CMP_END_RE = re.compile(rf"(?P<cmp>{_alternation(_PRE_COMPARATORS)})(?:{_LEAD_FILLER})*$")

# After a noun-led count ("幼儿园20所") the clause must end or the list go on.
_COUNT_END_RE = re.compile(rf"(?:$|[{_CLAUSE_END}、)）(（]|和|及|与|并|以及|到|赴|参加|参与)")
# Characters that, right before a number, make it part of something else.
_NUMBER_GLUE = frozenset("第.-—~～/#_" + string.ascii_letters)
_QUOTE_OPEN = "“‘\"'《〈「『"

# Metric trimming: leading scope/time/filler words and trailing particles.
_METRIC_LEAD_RE = re.compile(
    r"^(?:[、\s]|(?:到|至|在)?(?:\d{4}|[〇零一二三四五六七八九]{4})年(?:度|底|末|内)?前?"
    r"|\d{1,2}月(?:底|末|份)?前?|年内|全年|今年|明年|"
    + "|".join(_FILLER_VERBS)
    + r"|按照|按|其中|并且|并|且|同时|进一步|要|将|使|让|以及|和|及|与|再|全面|持续|继续|"
    r"累计|共|逐步|稳步|积极|大力|着力|重点)+"
)
_METRIC_TAIL_RE = re.compile(
    r"(?:[、\s]|的|要|将|再|需|应|已|力争|争取|确保|努力|逐步|稳步|分别|进一步"
    r"|每(?:周|天|日|月|年|学期|学年))+$"
)
_NOUN_CUT_RE = re.compile(r"并|以及|用于|进行|开展|给予|作为|参加|等(?:工作|任务)|[、)）(（]")


@dataclass
class _Quantity:
    """A number with its unit, as found in the text."""

    start: int
    end: int  # after the unit and any comparator that follows it (以上)
    raw: str
    value: float
    unit: str
    post: str | None
    approx: bool


def _join_wrapped_lines(text: str) -> str:
    """Undo hard line wraps inside a sentence (PDF copies break words across lines)."""
    return re.sub(r"(?<=[^\s。；;！？!?：:])\n(?=[^\s\d一二三四五六七八九十(（])", "", text)


def _clause_start(norm: str, pos: int) -> int:
    """Start of the clause that contains pos, at most _MAX_CLAUSE characters back."""
    low = max(0, pos - _MAX_CLAUSE)
    return max(low, *(norm.rfind(mark, low, pos) + 1 for mark in _CLAUSE_END))


def _mask_number_runs(norm: str) -> str:
    """Mask (with #, offsets kept) number tokens too long to be numbers."""
    return _NUMBER_RE.sub(
        lambda m: m.group() if len(m.group()) <= _MAX_NUMBER_CHARS else "#" * len(m.group()),
        norm,
    )


def _clean_metric(head: str) -> str:
    """Trim a metric candidate to its noun phrase."""
    metric = head
    for _ in range(3):
        metric = _METRIC_TAIL_RE.sub("", metric)
        if "的" in metric:
            # "具有示范作用的初中" -> "初中"; "改革任务的" -> "改革任务"
            metric = metric.rsplit("的", 1)[1] or metric
        metric = _METRIC_LEAD_RE.sub("", metric)
    return metric.strip()


def _quantities(norm: str) -> list[_Quantity]:
    """All numbers with a unit in the (normalised) text, in order."""
    found: list[_Quantity] = []
    for m in _QUANTITY_RE.finditer(norm):
        start = m.start()
        prev = norm[start - 1] if start else ""
        if prev in _NUMBER_GLUE or prev.isdigit():
            continue  # ordinal (第三届), version (v6), range (10-20), code
        if m.group("per"):
            raw = m.group("pnum")
            unit = "%" if m.group("per") == "百分之" else "‰"
        else:
            raw = m.group("num")
            unit = _unit_name(m.group("unit"))
        value = parse_number(raw)
        if value is None:
            continue
        post_m = _POST_RE.match(norm, m.end())
        post = _POST_COMPARATORS[post_m.group("post")] if post_m else None
        end = post_m.end() if post_m else m.end()
        approx = m.group("approx") is not None
        found.append(_Quantity(start, end, raw, value, unit, post, approx))
    return found


@lru_cache(maxsize=256)
def _unit_name(found: str) -> str:
    """The name of the unit a quantity was written with (its pattern in bot/units.py)."""
    return next(name for pattern, name in _UNITS if re.fullmatch(pattern, found))


def _count_noun(norm: str, pos: int) -> tuple[str, int]:
    """The noun after a verb-led count ("培育15个|市级优质教育集团"), and where it ends."""
    end = pos
    while end < len(norm) and norm[end] not in _CLAUSE_END and end - pos < 24:
        end += 1
    noun = norm[pos:end]
    cut = _NOUN_CUT_RE.search(noun)
    if cut:
        noun = noun[: cut.start()]
    noun = noun.rstrip("的 ")
    return noun, pos + len(noun)


def extract_targets(text: str) -> list[ParsedTarget]:
    """Return the quantitative targets stated in text, in order of appearance.

    Each target has a short source phrase, a metric (the noun phrase before the number, or
    verb + noun for "培育15个市级优质教育集团"), a comparator, a value and a unit.

    Rules:
    - Units: %, ‰, 个百分点 (百分之N is %, 百分点 is 个百分点), counts (个 所 家 项 名 位 人
      人次 场 场次 次 间 台 套 本 篇 门 节 张 支 册 件 户 辆 座 处 条), 元, 平方米, 平方公里,
      公里, 亩, 吨, 天, 小时, 学时, 课时, 倍. 万/亿/千 after the number multiply the value and
      never stay in the unit: 1.2万人 -> 12000 人, 3亿元 -> 300000000 元, 50万元 -> 500000 元.
      年 and 月 are not units, so years and dates never become targets.
    - Comparators: before the number (不少于/至少/达到/保持在 >=, 超/超过/高于 >, 不超过/
      控制在/降至 <=, 低于/少于 <, 下降/降低/减少 decrease, 提高/提升/增长/增加 increase)
      or after it (以上 >=, 以下/以内 <=, 左右 =); after wins, except after decrease/increase.
      A baseline between metric and comparator (比2022年, 较上年, 同比, 由120所) is dropped.
      "1万多个" / "100余所" with no other word is ">". 新增/新建 N are counts ("="), not
      increases. "经费不低于公用经费总额的5%" is ">= 5 %" with metric 经费.
    - A percentage with no comparator counts only after a rate noun (巩固率99% "=",
      覆盖率100% ">="); 实现 is ">=" only before a percentage. 全覆盖 (no number) is ignored.
    - A count or amount with no comparator is a target only when an action verb asks for it:
      right before the number ("培育15个市级优质教育集团", metric verb + noun), earlier in the
      same clause ("建成智慧校园示范校30所", "培育...初中2所、高中1所"), or for the previous
      count of the sentence ("新增幼儿园学位5000个，义务教育学位1.5万个"); never in a clause
      that describes what exists (共有, 现有, 涉及, ...).
    - A count written after its noun must end the clause or list item, and one followed by 的
      is never a target: "50人以上大班额", "100人以上的学校", "开展市直8所公办幼儿园与...的帮扶"
      describe things. Slogans in quotes ("“三所学校”", "“四个100%”") and a bare 一 (一次性,
      一人一档) are skipped unless an explicit bound (至少一所) comes with them.
    - Skipped outright: years and dates (年/月 are not units), ordinals (第三届), numbers glued
      to letters or digits (Ipv6, 5G, PM2.5), numbers with no unit (提升工程2.0), ranges (10-20所).
    - A metric left empty ("..., 到2025年下降至50%以下") is taken from the previous target in
      the same sentence.
    """
    original = _join_wrapped_lines(text)
    norm = _mask_number_runs(fold_width(original))
    targets: list[ParsedTarget] = []
    last_end = 0
    last_verb: str | None = None  # the verb that asked for the previous count, for lists
    last_metric = ""
    sentence_ends = (m.start() for m in _SENTENCE_END_RE.finditer(norm))
    next_sentence_end = next(sentence_ends, len(norm))
    last_sentence_end = -1  # the last sentence end before the current quantity
    for q in _quantities(norm):
        if q.start < last_end:
            continue  # inside the previous target's phrase
        while next_sentence_end < q.start:
            last_sentence_end = next_sentence_end
            next_sentence_end = next(sentence_ends, len(norm))
        clause_start = _clause_start(norm, q.start)
        seg_start = max(clause_start, last_end)
        same_sentence = last_end > 0 and last_sentence_end < last_end
        list_verb = last_verb if same_sentence else None
        found = _target_at(norm, q, seg_start, clause_start, list_verb)
        if found is None:
            continue
        metric, comparator, start, end, verb = found
        if not metric and same_sentence:
            metric = last_metric  # "近视率每年下降1个百分点，到2025年下降至50%以下"
        targets.append(
            ParsedTarget(
                text=original[start:end].strip(" 、\t"),
                metric=metric,
                comparator=comparator,
                value=q.value,
                unit=q.unit,
            )
        )
        last_end, last_verb, last_metric = end, verb, metric
    return targets


def _target_at(
    norm: str, q: _Quantity, seg_start: int, clause_start: int, list_verb: str | None
) -> tuple[str, str, int, int, str | None] | None:
    """Read the target around quantity q: (metric, comparator, start, end, count verb) or None."""
    pre_text = norm[seg_start : q.start]
    pre_m = _PRE_RE.search(pre_text)
    assert pre_m is not None  # every part is optional, so at worst the empty suffix matches
    head = pre_text[: pre_m.start()]
    percent = q.unit in _PERCENT_UNITS
    pre_word = pre_m.group("cmp")
    if pre_word == "实现" and not percent:
        head, pre_word = pre_text[: pre_m.end("cmp")], None  # 实现 N 个: a verb, not a bound
    pre_cmp = _PRE_COMPARATORS[pre_word] if pre_word else None

    if head.endswith(tuple(_QUOTE_OPEN)) and pre_cmp is None:
        return None  # a slogan: “三所学校”, “四个100%”
    bound_word = pre_word  # the word that makes a lone 一 a number

    if pre_cmp in ("decrease", "increase"):
        comparator: str | None = pre_cmp
    else:
        comparator = q.post or pre_cmp
    if comparator is None and q.approx:
        comparator = ">"

    start, end = seg_start, q.end
    verb: str | None = None
    if percent:
        share_m = _SHARE_RE.search(head) if comparator is None else None
        if share_m:
            comparator = _PRE_COMPARATORS[share_m.group("cmp")]
            head = head[: share_m.start()]
        metric = _clean_metric(head)
        if comparator is None:
            if not _RATE_NOUN_RE.search(metric):
                return None
            comparator = ">=" if q.value == 100 else "="
    else:
        if norm.startswith("的", q.end):
            return None  # descriptive: "100人以上的学校"
        verb_m = _VERB_END_RE.search(head) if pre_m.group("baseline") is None else None
        if verb_m is not None:
            verb, verb_start = verb_m.group("verb"), verb_m.start()
            if comparator is None:
                # "至少新建20所": a bound written before the verb
                cmp_m = _CMP_END_RE.search(head[:verb_start])
                if cmp_m and _PRE_COMPARATORS[cmp_m.group("cmp")] in _BOUNDS:
                    bound_word = cmp_m.group("cmp")
                    comparator = _PRE_COMPARATORS[bound_word]
        elif list_verb is not None and head.strip(" 、和及与") == "":
            verb, verb_start = list_verb, -1  # "新建20所幼儿园、10所小学"
        if q.raw in ("一", "壹") and bound_word not in _STRICT_BOUNDS:
            return None  # 一 is mostly part of a word: 一次性, 一人一档, 一所一策
        if verb is not None:
            noun, noun_end = _count_noun(norm, q.end)
            if noun:
                metric = noun if verb in _FILLER_VERBS else verb + noun
                if verb_start >= 0:
                    start = seg_start + verb_start
                end = noun_end
            else:
                metric = _clean_metric(head)
        else:
            metric = _clean_metric(head)
            if not _COUNT_END_RE.match(norm, q.end):
                return None  # a count that qualifies a noun: "50人以上大班额", "8所公办幼儿园"
            # A noun-led count with no bound needs a verb earlier in the clause ("建成示范校30所",
            # "重点培育...初中2所、高中1所") or a count asked for just before in the sentence
            # ("新增幼儿园学位5000个，义务教育学位1.5万个").
            verb_any = _VERB_ANY_RE.search(norm, clause_start, q.start)
            verb = verb_any.group() if verb_any else list_verb
            if comparator is None and (
                not metric or verb is None or _STATIVE_RE.search(norm, clause_start, q.start)
            ):
                return None
        if comparator is None:
            comparator = "="

    if metric and start == seg_start:
        found_at = head.rfind(metric)
        if found_at >= 0:
            start = seg_start + found_at
    return metric, comparator, start, end, verb
