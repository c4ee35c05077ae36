"""Chinese official work-plan documents, given as lines of text, read into a ParsedPlan.

The readers (txt, docx, ...) hand over the document's lines or paragraphs; this module
finds the header, the numbered structure and the work items.

Cleaning
    Full-width and no-break spaces count as spaces; blank lines, page numbers (``- 3 -``,
    ``—3—``, ``第3页 共10页``, ``3/10``), 抄送/印发 footer lines, bare ``附件`` lines and
    ``（此页无正文）`` are dropped.

Numbered headings
    Seven kinds, in their conventional order from the top: ``第一部分``/``第一章``,
    ``一、`` (also ``一.``), ``（一）``, ``1.`` (also ``1、``, ``１．``, ``1．``), ``（1）``/``⑴``,
    ``1）``, ``①``.  A line is a heading only if its number fits the running count of its
    kind: 1 for the first one, then one to three more than the last, or 1 again
    after a heading of a higher kind (numbering that restarts in each section).  So a
    wrapped line that happens to start with ``3、4月`` or ``一、二年级`` stays text, and so
    does the second line of a numbered attachment list in the notice.

Joining wrapped lines (PDF/OCR output)
    A line is joined to the paragraph before it when that paragraph does not end with
    sentence-ending punctuation (。！？；：…”」』）)]】〕 and ASCII .!?;:) and the line is
    plain text: never a numbered heading, a header field (文号, a date line, a 联系人 line)
    or a note line (责任单位：…, 完成时限：…).  When the paragraph before is itself a
    heading, a note or a title, the line is joined only if that paragraph is visibly
    unfinished: it ends with ，、 or an opening bracket or quote, or (a heading) its
    title sentence already ended and its body began on the same line, or its last line
    is as wide as the document's wrapped lines (their median width, known once at least
    three plain lines are broken mid-sentence at a consistent width of 15 or more).
    Otherwise a heading without terminal punctuation is complete, and the next line
    starts the body.  When some lines are indented and others are not, an indented
    line starts a new paragraph.  A full-width line that ends with mid-sentence marks
    (；：”」） — or with anything, when an unindented line follows in an indented
    document) is joined too; one that ends with 。 is not, so a paragraph that ends
    exactly at the margin stays a paragraph (at worst, a line break inside a body).

Header (the paragraphs before the first numbered heading)
    文号 ``江教办〔2023〕5号`` (any of 〔〕[]［］()（）【】 round the year); the plan title from
    ``关于印发《X》的通知`` (X), else the first title-like line (short, no terminal
    punctuation, ending in 要点/计划/方案/分工/安排/清单/意见/工作/...), else the first
    short line; the issue date from a line that is only a date (``2023年3月15日``,
    ``二〇二三年三月十五日``); the issuer from the line just before it (or an organisation
    written before the date on the same line, or the part before 关于 in the notice
    title, or the ``XX文件`` red header); 联系人 and 电话/联系电话 from the line that names
    the 联系人.  A signature block (organisation line + date line) and a contact line at
    the end of the document are read too when the header has none; date, signature and
    contact lines never become item text.  Missing fields are None; without any title
    the source's file name stands in.

Items
    The top numbered kind is the section level when it is 第一部分, 一、 or （一）.  The
    kinds below it are item kinds, except the sub-point kinds (1)/1)/① which stay in the
    item's body text whenever another kind lies below the section level.  An item is a
    heading of an item kind with no numbered headings below it; a heading between the
    section and its items is a subsection, its title kept in ``ParsedItem.subsection``
    (several such levels are joined with " / ").  So ``一、/1.`` gives 1. items,
    ``一、/（一）/1.`` gives 1. items with the （一） title as subsection, ``一、/（一）`` gives
    （一） items, and ``1./（1）`` gives 1. items with the (1) points in their bodies.  A
    document with a single numbered kind has those headings as items in one implicit
    section titled with the plan title.  Text before the first heading (the preamble)
    and text between a section or subsection heading and its first item is not kept;
    a section with no item below it is kept as a section without items (一、指导思想).

    The title of a heading is its text up to the first 。；;：: or ！？ outside quotes and
    brackets, without the number and the terminal punctuation; the rest of that line and
    the following paragraphs up to the next heading are the body.  Responsibility notes
    are removed into lead/support units (see ``responsibility``); an item with no note
    takes the units noted on its subsection or section heading.  The suggested deadline is
    the latest one written in the item (a 完成时限 note wins; see ``deadlines``), else the
    one on its subsection or section heading, read with the plan's year: the issue
    date's, else the title's, else the 文号's.  A 完成时限 field kept from a note moves from
    the title to the body.  Targets come from ``targets.extract_targets`` on the title and
    body (joined by 。).

Numbers
    Arabic heading numbers have one to five digits (1. to 99999.), Chinese ones one to
    three characters (一 to 九十九).  When the document's item numbers run on through the
    whole plan (strictly increasing, as 1..27 or 1..1200), they are the item numbers and
    the labels ("9").  Otherwise items are numbered 1..N in order and labelled with the
    section label and the item's own label ("三.2"); if that is not unique, the subsection
    labels are put in between ("三.二.2").

Limits (``limits``)
    A paragraph joined from wrapped lines may hold at most 10,000 characters, an item's
    text (its heading paragraph and the paragraphs up to the next item) as many, and a plan
    at most 2,000 items and 2,000 sections; the counts are checked before any item's text is
    read for units, deadlines and targets.  What a heading or its ancestors say (title,
    units, deadline) is read once per heading, not once per item below it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from pathlib import PurePath
from statistics import median

from bot.cn_numbers import cn_int
from bot.importer import limits
from bot.importer.deadlines import extract_deadline, find_cn_date
from bot.importer.model import ParsedItem, ParsedPlan, ParsedSection, PlanFormatError
from bot.importer.responsibility import extract_responsibility, is_note_line
from bot.importer.targets import extract_targets

# Heading kinds, in conventional order from the top.
PART, CN_DUN, CN_PAREN, AR_DOT, AR_PAREN, AR_RPAREN, CIRCLED = range(7)
_SECTION_KINDS = {PART, CN_DUN, CN_PAREN}
_SUBPOINT_KINDS = {AR_PAREN, AR_RPAREN, CIRCLED}

_CN = r"[一二三四五六七八九十]{1,3}"
_AR = r"[0-9０-９]{1,5}"
_HEADINGS: list[tuple[int, re.Pattern[str]]] = [
    (PART, re.compile(rf"^第\s*(?P<n>{_CN}|{_AR})\s*(?:部分|篇|章)[\s:：、.．]*(?P<rest>.*)$")),
    (CN_PAREN, re.compile(rf"^[（(]\s*(?P<n>{_CN})\s*[）)]\s*[、.．]?\s*(?P<rest>.*)$")),
    (AR_PAREN, re.compile(rf"^[（(]\s*(?P<n>{_AR})\s*[）)]\s*[、.．]?\s*(?P<rest>.*)$")),
    (AR_PAREN, re.compile(r"^(?P<n>[⑴-⒇])\s*(?P<rest>.*)$")),
    (
        CN_DUN,
        re.compile(rf"^(?P<n>{_CN})\s*[、.．]\s*(?![一二三四五六七八九十]+[、，,])(?P<rest>.*)$"),
    ),
    (AR_DOT, re.compile(rf"^(?P<n>{_AR})\s*[.．、](?![0-9０-９.．])\s*(?P<rest>.*)$")),
    (AR_RPAREN, re.compile(rf"^(?P<n>{_AR})\s*[）)]\s*(?P<rest>.*)$")),
    (CIRCLED, re.compile(r"^(?P<n>[①-⑳])\s*(?P<rest>.*)$")),
]

_TERMINAL = set("。！？；：…”」』）)]】〕.!?;:")
_SENTENCE_END = set("。；;：:！？!?")
_CONTINUING = set("，,、（(《“‘「")
_MID_SENTENCE = set("；;：:”’」』）)")
_OPENERS = set("“‘《（(「『【〔[［")
_CLOSERS = set("”’》）)」』】〕]］")

_PAGE = re.compile(
    r"^(?:[-—–－_~～·•\s]*[0-9０-９]{1,4}[-—–－_~～·•\s]*"
    r"|第\s*[0-9０-９]+\s*页[\s,，/]*(?:共\s*[0-9０-９]+\s*页)?"
    r"|共\s*[0-9０-９]+\s*页[\s,，/]*第\s*[0-9０-９]+\s*页"
    r"|[0-9０-９]+\s*/\s*[0-9０-９]+"
    r"|page\s*\d+(?:\s*of\s*\d+)?)$",
    re.IGNORECASE,
)
_FOOTER = re.compile(
    r"^(?:抄送|抄报|分送|公开方式)\s*[:：]|[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日\s*印发$"
)
_ATTACHMENT = re.compile(r"^附\s*件\s*[0-9０-９]*\s*[:：]?$")
_NOISE = re.compile(r"^[（(](?:此页无正文|此件[^()（）]{0,8})[）)]$")
_DOC_NUMBER = re.compile(
    r"(?:^|(?<=\s))[\u4e00-\u9fffA-Za-z]{1,15}\s*[〔\[［(（【]\s*(?:19|20)[0-9]{2}\s*[〕\]］)）】]"
    r"\s*第?\s*[0-9]{1,4}\s*号(?=\s|$)"
)
_CONTACT_WORD = re.compile(r"联系人|联系电话|联系方式")
_CONTACT_LINE = re.compile(r"^[（(]?\s*(?:联系人|联系电话|联系方式)")
_CONTACT_NAME = re.compile(
    r"联系人\s*(?:及(?:联系)?(?:电话|方式))?\s*[:：]\s*(?P<name>[\u4e00-\u9fff·]{2,6}?)(?:同志)?"
    r"(?=[\s,，;；、:：)）(（。]|电话|联系|手机|$|[0-9０-９])"
)
_CONTACT_PHONE = re.compile(
    r"(?:电话|手机|联系方式)(?:号码)?\s*[:：]?\s*"
    r"(?P<phone>[0-9０-９][0-9０-９\-－—–()（） ]{3,}[0-9０-９])"
)
_ANY_PHONE = re.compile(r"(?P<phone>[0-9０-９][0-9０-９\-－—– ]{4,}[0-9０-９])")
_DEADLINE_NOTE = re.compile(
    r"^[（(【\[]?\s*(?:完成时限|完成时间|完成期限|时间节点|时限要求)\s*[:：】\]]"
)
_TIME_NOTE = re.compile(
    r"[（(〔\[［【]\s*(?:完成时限|完成时间|完成期限|时间节点|时限要求|截止时间|办结时限|时间要求|时限)"
    r"\s*[:：][^（()）〔〕\[\]［］【】]*[）)〕\]］】]"
)
_NOTICE = re.compile(r"关于.*通知$|^关于(?:印发|下发|转发|发布|公布|印送)")
_NOTICE_QUOTED = re.compile(r"[《〈<](?P<t>[^《》〈〉<>]+)[》〉>]")
_ATTACHMENT_PREFIX = re.compile(r"^附\s*件\s*[0-9０-９]*\s*[:：]\s*")
_NOTICE_PLAIN = re.compile(r"关于(?:印发|下发|转发|发布|公布|印送)(?P<t>.+?)的?通知")
_TITLE_END = re.compile(
    r"(?:要点|计划|方案|分工|安排|清单|意见|规划|细则|办法|通知|任务|重点|目标|措施|台账|纲要"
    r"|一览表|分解表|责任书|工作|事项|部署)$"
)
_TRAILING_NOTE = re.compile(r"[（(][^()（）]{1,15}[）)]$")
_ORG_END = re.compile(
    r"(?:局|委|委员会|办|办公室|厅|部|院|政府|中心|会|处|科|室|校|学校|园|公司|集团|所|站|队|馆"
    r"|组|小组|工委)$"
)
_YEAR = re.compile(r"((?:19|20)[0-9]{2})\s*年")
_DOC_YEAR = re.compile(r"[〔\[［(（【]\s*((?:19|20)[0-9]{2})")
_DATE_SUFFIX = re.compile(r"(?:印发|发布|制定|制发|通过)$")

HEAD, FIELD, NOTE, TITLE, TEXT = "head", "field", "note", "title", "text"
_MAX_TITLE_WIDTH = 40


@dataclass
class _Head:
    kind: int
    number: int
    label: str
    rest: str


@dataclass
class _Para:
    text: str
    kind: str
    head: _Head | None = None
    indent: bool = False
    last_width: float = 0.0  # width of the paragraph's last physical line


@dataclass
class _Node:
    para: _Para
    head: _Head
    parent: _Node | None
    texts: list[str] = field(default_factory=list)
    children: int = 0


# ---------------------------------------------------------------- small helpers


def _width(text: str) -> float:
    """Display width: ASCII counts half a Chinese character."""
    return sum(0.5 if ord(ch) < 128 else 1.0 for ch in text)


def _terminal(text: str) -> bool:
    return bool(text) and text[-1] in _TERMINAL


def _number(kind: int, raw: str) -> int | None:
    if kind == CIRCLED:
        return ord(raw) - ord("①") + 1
    if raw in "⑴⑵⑶⑷⑸⑹⑺⑻⑼⑽⑾⑿⒀⒁⒂⒃⒄⒅⒆⒇" and len(raw) == 1:
        return ord(raw) - ord("⑴") + 1
    return cn_int(raw)


def _match_heading(text: str) -> _Head | None:
    for kind, pattern in _HEADINGS:
        m = pattern.match(text)
        if m:
            number = _number(kind, m.group("n"))
            if number is None or number < 1:
                return None
            raw = m.group("n")
            label = str(number) if raw[0].isdigit() else raw
            return _Head(kind, number, label, m.group("rest").strip())
    return None


class _Sequencer:
    """Accepts a numbered heading only when its number fits the count of its kind."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}
        self.restartable: set[int] = set()

    def accept(self, head: _Head) -> bool:
        last = self.last.get(head.kind)
        if last is None:
            ok = head.number == 1
        else:
            ok = (head.kind in self.restartable and head.number == 1) or (
                last < head.number <= last + 3
            )
        if ok:
            self.last[head.kind] = head.number
            self.restartable.discard(head.kind)
            self.restartable.update(k for k in range(head.kind + 1, CIRCLED + 1))
        return ok


def _date_line(text: str) -> str | None:
    """If text is a date line, the organisation written before the date ("" if none)."""
    found = find_cn_date(text)
    if found is None:
        return None
    _, start, end = found
    before = text[:start].strip(" （(")
    after = _DATE_SUFFIX.sub("", text[end:].strip(" ）)")).strip()
    if after or (before and not _org_like(before)):
        return None
    return before


def _org_like(text: str) -> bool:
    if len(text) > 60:
        return False  # wider than 30 whatever it holds; and a long paragraph is not re-read
    return (
        0 < _width(text) <= 30
        and not _terminal(text)
        and not re.search(r"[，,。；;：:]", text)
        and bool(_ORG_END.search(text))
    )


def _title_like(text: str) -> bool:
    core = _TRAILING_NOTE.sub("", _ATTACHMENT_PREFIX.sub("", text)).strip()
    if len(core) > 2 * _MAX_TITLE_WIDTH:
        return False  # wider than the limit whatever it holds
    return (
        0 < _width(core) <= _MAX_TITLE_WIDTH
        and "。" not in core
        and not _terminal(core)
        and bool(_TITLE_END.search(core) or _NOTICE.search(core))
    )


def _is_doc_number_line(text: str) -> bool:
    return bool(_DOC_NUMBER.search(text)) and _width(text) <= 40


def _is_field(text: str, *, in_header: bool) -> bool:
    """Date lines and contact lines anywhere; a 文号 line only before the first heading."""
    return bool(
        _date_line(text) is not None
        or _CONTACT_LINE.match(text)
        or (in_header and _is_doc_number_line(text))
    )


def _split_title(text: str) -> tuple[str, str]:
    """Split at the first sentence end outside quotes and brackets: (title, rest)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
        elif depth == 0 and ch in _SENTENCE_END:
            if ch in ":：" and text[i - 1 : i].isdigit() and text[i + 1 : i + 2].isdigit():
                continue  # a time such as 8:30
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip().rstrip("。；;：:，,、 "), ""


# ---------------------------------------------------------------- stages


def _clean(lines: list[str]) -> list[tuple[str, bool]]:
    """Normalise spaces and drop blank lines, page numbers and footers: (text, indented)."""
    out: list[tuple[str, bool]] = []
    for raw in lines:
        for piece in raw.splitlines() or [raw]:
            piece = piece.replace("\ufeff", "").replace("\u200b", "").replace("\xa0", " ")
            indent = bool(re.match(r"^(?:\u3000|[ \t]{2,})", piece))
            text = piece.replace("\u3000", " ").strip()
            if not text or any(p.search(text) for p in (_PAGE, _FOOTER, _ATTACHMENT, _NOISE)):
                continue
            out.append((text, indent))
    return out


def _classify(lines: list[tuple[str, bool]]) -> list[_Para]:
    """Tell headings, header fields, notes, title-like lines and plain text apart."""
    paras: list[_Para] = []
    sequencer = _Sequencer()
    seen_heading = False
    for text, indent in lines:
        head = _match_heading(text)
        is_field = _is_field(text, in_header=not seen_heading)
        if head is not None and not is_field and sequencer.accept(head):
            kind = HEAD
            seen_heading = True
        elif is_field:
            kind, head = FIELD, None
        elif is_note_line(text) or _DEADLINE_NOTE.match(text):
            kind, head = NOTE, None
        elif not seen_heading and _title_like(text):
            kind, head = TITLE, None
        else:
            kind, head = TEXT, None
        paras.append(_Para(text, kind, head, indent, _width(text)))
    for para, after in pairwise(paras):
        if para.kind == TEXT and after.kind == FIELD and _org_like(para.text):
            # A signature: the issuer just before the date.
            para.kind = FIELD if _date_line(after.text) is not None else TEXT
    return paras


def _wrap_width(paras: list[_Para]) -> float | None:
    """The width of wrapped lines, when the document is visibly wrapped."""
    broken = [
        a.last_width
        for a, b in pairwise(paras)
        if a.kind == TEXT and b.kind == TEXT and not _terminal(a.text)
    ]
    if len(broken) < 3:
        return None
    middle = median(broken)
    if middle < 15 or sum(abs(w - middle) <= 3 for w in broken) < 0.6 * len(broken):
        return None
    return float(middle)


def _joinable(prev: _Para, para: _Para, wrap: float | None, use_indent: bool) -> bool:
    """Whether para continues the paragraph prev (see the module docstring)."""
    if prev.kind == FIELD or para.kind in (HEAD, FIELD, NOTE):
        return False
    if use_indent and para.indent:
        return False
    full = wrap is not None and prev.last_width >= wrap - 2
    if _terminal(prev.text):
        # A full-width line that ends inside a sentence, or before an unindented line.
        return (
            full
            and prev.kind != TITLE
            and para.kind == TEXT
            and (prev.text[-1] in _MID_SENTENCE or use_indent)
        )
    if para.kind == TITLE:
        return prev.kind == TEXT and not _org_like(prev.text)
    if prev.kind == TEXT:
        return True
    # A heading, note or title is joined only when it is visibly unfinished.
    return (
        prev.text[-1] in _CONTINUING
        or (prev.head is not None and _body_began(prev.head.rest))
        or full
    )


def _body_began(rest: str) -> bool:
    """Whether a heading's title sentence ended and its body began on the heading's line.

    Only the start of the text is read: a title sentence longer than that is over the title
    limit anyway, and reading the whole paragraph again for every line joined to it would
    take time quadratic in its length.
    """
    return _split_title(rest[: 4 * limits.MAX_TITLE_CHARS])[1] != ""


def _join(paras: list[_Para], source: str) -> list[_Para]:
    """Join lines broken mid-sentence back into paragraphs (each within the length limit)."""
    wrap = _wrap_width(paras)
    indented = sum(p.indent for p in paras)
    use_indent = 0 < indented < 0.9 * len(paras)
    out: list[_Para] = []
    seen_head = False
    for para in paras:
        seen_head = seen_head or para.kind == HEAD
        prev = out[-1] if out else None
        if prev is None or not _joinable(prev, para, wrap, use_indent):
            out.append(para)
            continue
        prev.text += para.text
        if len(prev.text) > limits.MAX_LINE_CHARS:
            raise limits.paragraph_too_long(prev.text, source)
        if prev.head is not None:
            prev.head.rest += para.text
        if prev.kind == TEXT and not seen_head and _title_like(prev.text):
            prev.kind = TITLE
        elif prev.kind == TITLE and not _title_like(prev.text):
            prev.kind = TEXT
        prev.last_width = para.last_width
    return out


@dataclass
class _Header:
    title: str = ""
    doc_number: str | None = None
    issuer: str | None = None
    issued_on: date | None = None
    contact_name: str | None = None
    contact_phone: str | None = None


def _phone(raw: str) -> str:
    phone = raw.translate(str.maketrans("０１２３４５６７８９－—–（）", "0123456789---()"))
    return re.sub(r"\s+", "", phone)


def _contact(paras: list[_Para]) -> tuple[str | None, str | None]:
    for para in paras:
        where = _CONTACT_WORD.search(para.text)
        if where is None:
            continue
        name_m = _CONTACT_NAME.search(para.text, where.start())
        phone_m = _CONTACT_PHONE.search(para.text, where.start())
        if name_m is None and phone_m is None:
            continue
        if phone_m is None and name_m is not None:
            phone_m = _ANY_PHONE.search(para.text, name_m.end())
        name = name_m.group("name") if name_m else None
        phone = _phone(phone_m.group("phone")) if phone_m else None
        return name, phone
    return None, None


def _plan_title(header: list[_Para], source: str) -> str:
    """《X》 in the notice title, else a title line, else 关于印发X的通知, else a short line."""
    notices = [p.text for p in header if _NOTICE.search(p.text)]
    for text in notices:
        quoted = _NOTICE_QUOTED.search(text)
        if quoted:
            return quoted.group("t").strip()
    for para in header:
        if para.kind == TITLE and para.text not in notices:
            return _ATTACHMENT_PREFIX.sub("", para.text)
    for text in notices:
        plain = _NOTICE_PLAIN.search(text)
        if plain:
            return plain.group("t").strip()
    for para in header:
        if (
            para.kind == TEXT
            and _width(para.text) <= _MAX_TITLE_WIDTH
            and not _terminal(para.text)
            and not para.text.endswith("文件")
        ):
            return para.text
    return PurePath(source).stem if source else ""


def _issuer_before(paras: list[_Para], index: int) -> str | None:
    org = _date_line(paras[index].text)
    if org:
        return org
    if index > 0 and paras[index - 1].kind == FIELD and _org_like(paras[index - 1].text):
        return paras[index - 1].text
    return None


def _parse_header(paras: list[_Para], first_head: int, source: str) -> _Header:
    """Read the header fields (and a signature block at the end of the document)."""
    header = paras[:first_head]
    result = _Header(title=_plan_title(header, source))
    for para in header:
        m = _DOC_NUMBER.search(para.text)
        if m and para.kind == FIELD:
            result.doc_number = re.sub(r"\s+", "", m.group(0))
            break
    date_index = next(
        (i for i, p in enumerate(header) if p.kind == FIELD and _date_line(p.text) is not None),
        None,
    )
    if date_index is None:  # a signature block at the end of the document
        date_index = next(
            (
                i
                for i in range(len(paras) - 1, first_head - 1, -1)
                if paras[i].kind == FIELD and _date_line(paras[i].text) is not None
            ),
            None,
        )
    if date_index is not None:
        result.issuer = _issuer_before(paras, date_index)
        found = find_cn_date(paras[date_index].text)
        result.issued_on = found[0] if found else None
    if result.issuer is None:
        for para in header:
            notice = re.match(r"^(?P<org>.+?)关于", para.text)
            if notice and _NOTICE.search(para.text) and _org_like(notice.group("org")):
                result.issuer = notice.group("org")
                break
            if para.text.endswith("文件") and _org_like(para.text[:-2]):
                result.issuer = para.text[:-2].strip()
                break
    name, phone = _contact(header)
    if name is None and phone is None:
        name, phone = _contact([p for p in paras[first_head:] if p.kind == FIELD])
    result.contact_name, result.contact_phone = name, phone
    return result


def _levels(kinds: set[int]) -> tuple[int | None, set[int]]:
    """Choose the section kind (or None) and the structural kinds below it."""
    ordered = sorted(kinds)
    top = ordered[0]
    if len(ordered) == 1:
        return None, {top}
    if top in _SECTION_KINDS:
        section: int | None = top
        below = ordered[1:]
    else:
        section, below = None, ordered
    main = {k for k in below if k not in _SUBPOINT_KINDS}
    return section, main or {below[0]}


def _heading_title(node: _Node) -> str:
    cleaned, _, _ = extract_responsibility(node.head.rest)
    title, _ = _split_title(cleaned)
    if not title and node.texts:
        title, _ = _split_title(extract_responsibility(node.texts[0])[0])
    return _TIME_NOTE.sub("", title).strip()


class _HeadingNotes:
    """What a section or subsection heading says, read once however many items lie below."""

    def __init__(self, default_year: int | None) -> None:
        self.default_year = default_year
        self._units: dict[int, tuple[list[str], list[str]]] = {}
        self._deadlines: dict[int, date | None] = {}
        self._titles: dict[int, str] = {}

    def units(self, node: _Node) -> tuple[list[str], list[str]]:
        """The lead and support units noted on the heading (new lists for each caller)."""
        if id(node) not in self._units:
            _, lead, support = extract_responsibility(node.head.rest)
            self._units[id(node)] = (lead, support)
        lead, support = self._units[id(node)]
        return list(lead), list(support)

    def deadline(self, node: _Node) -> date | None:
        """The deadline written on the heading."""
        if id(node) not in self._deadlines:
            self._deadlines[id(node)] = extract_deadline(node.head.rest, self.default_year)
        return self._deadlines[id(node)]

    def title(self, node: _Node) -> str:
        """The heading's title."""
        if id(node) not in self._titles:
            self._titles[id(node)] = _heading_title(node)
        return self._titles[id(node)]


def parse_plan_lines(lines: list[str], *, source: str = "") -> ParsedPlan:
    """Parse the lines of a plan document into a ParsedPlan."""
    if not any(line.strip() for line in lines):
        raise PlanFormatError("importer.empty", file=source)
    paras = _join(_classify(_clean(lines)), source)
    heads = [i for i, p in enumerate(paras) if p.kind == HEAD]
    if not heads:
        raise PlanFormatError("importer.document.no_structure", file=source)
    header = _parse_header(paras, heads[0], source)
    issued_on = header.issued_on
    year_m = _YEAR.search(header.title)
    doc_year_m = _DOC_YEAR.search(header.doc_number or "")
    default_year = (
        issued_on.year
        if issued_on
        else int(year_m.group(1))
        if year_m
        else int(doc_year_m.group(1))
        if doc_year_m
        else None
    )

    head_of = {i: h for i in heads if (h := paras[i].head) is not None}
    section_kind, item_kinds = _levels({h.kind for h in head_of.values()})
    structural = item_kinds | ({section_kind} if section_kind is not None else set())

    # Build the tree of structural headings; other numbered lines are body text.
    nodes: list[_Node] = []
    stack: list[_Node] = []
    start = min(i for i, h in head_of.items() if h.kind in structural)
    for i in range(start, len(paras)):
        para = paras[i]
        if para.kind == FIELD:
            continue
        head = para.head
        if para.kind == HEAD and head is not None and head.kind in structural:
            while stack and stack[-1].head.kind >= head.kind:
                stack.pop()
            parent = stack[-1] if stack else None
            if parent is not None:
                parent.children += 1
            node = _Node(para, head, parent)
            nodes.append(node)
            stack.append(node)
        elif stack:
            stack[-1].texts.append(para.text)

    section_nodes = [n for n in nodes if n.head.kind == section_kind]
    item_nodes = [n for n in nodes if n.head.kind != section_kind and n.children == 0]
    limits.check_item_count(len(item_nodes), source)
    limits.check_section_count(len(section_nodes), source)
    heading_notes = _HeadingNotes(default_year)

    def section_of(node: _Node) -> _Node | None:
        up = node.parent
        while up is not None and up.head.kind != section_kind:
            up = up.parent
        return up

    sections: list[ParsedSection] = []
    section_numbers: dict[int, int] = {}
    if section_kind is None or any(section_of(n) is None for n in item_nodes):
        sections.append(ParsedSection(number=1, label="", title=header.title))
    for node in section_nodes:
        section_numbers[id(node)] = len(sections) + 1
        sections.append(
            ParsedSection(
                number=len(sections) + 1, label=node.head.label, title=_heading_title(node)
            )
        )

    items: list[ParsedItem] = []
    for node in item_nodes:
        raw = "\n".join([node.head.rest, *node.texts])
        limits.check_item_length(len(raw), node.head.label, source)
        cleaned, lead, support = extract_responsibility(raw)
        body_lines = [line for line in cleaned.split("\n") if line.strip()]
        title, remainder = _split_title(body_lines[0] if body_lines else "")
        notes = _TIME_NOTE.findall(title)  # a kept 完成时限 field belongs to the body
        title = _TIME_NOTE.sub("", title).strip()
        body = "\n".join([*notes, *([remainder] if remainder else []), *body_lines[1:]])
        deadline = extract_deadline(raw, default_year)
        ancestors: list[_Node] = []
        up = node.parent
        while up is not None:
            ancestors.append(up)
            up = up.parent
        for ancestor in ancestors:  # nearest first: inherit a note on the heading
            if not lead and not support:
                lead, support = heading_notes.units(ancestor)
            if deadline is None:
                deadline = heading_notes.deadline(ancestor)
        middle = [a for a in reversed(ancestors) if a.head.kind != section_kind]
        section = section_of(node)
        items.append(
            ParsedItem(
                number=node.head.number,
                label=node.head.label,
                section=section_numbers[id(section)] if section is not None else 1,
                title=title,
                body=body,
                subsection=" / ".join(heading_notes.title(a) for a in middle) or None,
                lead_units=lead,
                support_units=support,
                deadline=deadline,
                targets=extract_targets(f"{title}。{body}" if body else title),
            )
        )

    _renumber(items, item_nodes, section_kind)
    return ParsedPlan(
        title=header.title,
        doc_number=header.doc_number,
        issuer=header.issuer,
        issued_on=issued_on,
        contact_name=header.contact_name,
        contact_phone=header.contact_phone,
        sections=sections,
        items=items,
    )


def _renumber(items: list[ParsedItem], nodes: list[_Node], section_kind: int | None) -> None:
    """Keep the document's numbers when they run on; otherwise number 1..N with labels."""
    numbers = [item.number for item in items]
    if all(a < b for a, b in pairwise(numbers)):
        return

    def labels(node: _Node, with_middle: bool) -> str:
        parts = [node.head.label]
        up = node.parent
        while up is not None:
            if up.head.kind == section_kind or with_middle:
                parts.append(up.head.label)
            up = up.parent
        return ".".join(reversed(parts))

    short = [labels(node, False) for node in nodes]
    use = short if len(set(short)) == len(short) else [labels(node, True) for node in nodes]
    for index, (item, label) in enumerate(zip(items, use, strict=True), start=1):
        item.number = index
        item.label = label
