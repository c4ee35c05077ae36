"""Responsibility notes in plan text: who leads an item and who supports it.

Forms recognised (full-width or ASCII brackets and colons alike):

* a bracketed note: ``（责任单位：…）``, ``〔责任单位：…〕``, ``[牵头单位：…]``,
  ``（牵头单位：…，责任单位：…）``, ``（牵头单位：X；配合单位：Y）``, ``（负责部门：…）``;
* a bracketed sentence: ``（X牵头，Y配合）``, ``（X牵头负责，Y、Z参与）``, ``（X负责）``,
  ``（X、Y按职责分工负责）`` — every clause must end with such a verb;
* a note running to the end of its line, at the start of the line or after a sentence
  end: ``责任单位：…``, ``牵头单位：X  配合单位：Y``, ``【责任单位】…``.

Roles:

* 牵头/主责/主办 units lead; 配合/协办/协助/参与/协作/协同 units support;
* 责任/负责/实施/承办/落实 units (责任单位, 负责部门, …, or ``X负责``): when a lead unit is
  named anywhere in the text they support; otherwise the first one listed leads and the
  rest support (real plans list the lead unit first).

Unit lists are split on 、，,；;/ and spaces outside brackets (``各县（市、区）教育局`` stays
whole), and on 和/及/与/以及 only when both sides end like a unit name (局, 委, 办, 部门,
政府, 学校, …), so ``市住房和城乡建设局`` stays whole. A trailing 等 is dropped.

The notes are removed from the text. Other fields inside a note (``完成时限：…``) are kept
in place, so ``（牵头单位：X；完成时限：6月底前）`` leaves ``（完成时限：6月底前）``.
"""

from __future__ import annotations

import re

_LEAD_PREFIXES = ("牵头", "主责", "主办")
_SUPPORT_PREFIXES = ("配合", "协办", "协助", "参与", "协作", "协同")
_ROLE_LABEL = (
    r"(?:牵头|主责|主办|配合|协办|协助|参与|协作|协同|责任|负责|实施|承办|落实)"
    r"(?:单位|部门|处室|科室|主体|机构)"
)
_OTHER_LABEL = r"(?:完成时限|完成时间|完成期限|时间节点|时限要求|截止时间|办结时限|时间要求|时限)"
_ANY_LABEL = rf"(?:{_ROLE_LABEL}|{_OTHER_LABEL})"
_FIELD = re.compile(
    rf"(?:[【\[［]\s*(?P<l1>{_ANY_LABEL})\s*[】\]］]\s*[:：]?|(?P<l2>{_ANY_LABEL})\s*[:：])"
)
_NOTE_START = re.compile(rf"^\s*(?:[【\[［]\s*{_ROLE_LABEL}\s*[】\]］]|{_ROLE_LABEL}\s*[:：])")
_LINE_NOTE = re.compile(
    rf"(?:^|(?<=[。；;！？!?]))\s*(?=(?:[【\[［]\s*{_ROLE_LABEL}\s*[】\]］]|{_ROLE_LABEL}\s*[:：]))"
)
_VERB_CLAUSE = re.compile(
    r"^(?:由)?(?P<units>.+?)\s*(?P<verb>牵头负责|牵头|按职责分工负责|按职责负责|分工负责|分别负责"
    r"|共同负责|负责落实|具体负责|负责|配合落实|配合|参与|协助|协办|协同)$"
)
_OPEN = "（(〔[［【"
_CLOSE = "）)〕]］】"
_SEPARATORS = "、，,；;/／ \t\u3000"
_CONNECTORS = ("以及", "和", "及", "与")
_UNIT_SUFFIXES = (
    "局",
    "委",
    "办",
    "厅",
    "部",
    "院",
    "会",
    "中心",
    "政府",
    "公司",
    "集团",
    "处",
    "科",
    "室",
    "站",
    "所",
    "队",
    "校",
    "园",
    "馆",
    "署",
    "联",
    "社",
    "行",
    "台",
    "组",
    "区",
    "县",
    "市",
    "镇",
    "乡",
    "街道",
    "单位",
    "部门",
    "机构",
)
_TRAILING_ETC = re.compile(r"等(?:单位|部门|相关单位|有关单位|有关部门)?$")

Units = tuple[list[str], list[str], list[str]]  # lead, support, responsible


def is_note_line(text: str) -> bool:
    """Tell whether a line starts with a responsibility label (责任单位：…, 【牵头单位】…)."""
    return bool(_NOTE_START.match(text))


def _role(label: str) -> str:
    if label.startswith(_LEAD_PREFIXES):
        return "lead"
    if label.startswith(_SUPPORT_PREFIXES):
        return "support"
    return "resp"


def _split_top(text: str, separators: str) -> list[str]:
    """Split on separator characters that are outside brackets."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        if depth == 0 and ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _split_connectors(unit: str) -> list[str]:
    """Split 市教育局和市财政局 in two, but not 市住房和城乡建设局."""
    depth = 0
    for i, ch in enumerate(unit):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        if depth:
            continue
        for conn in _CONNECTORS:
            if unit.startswith(conn, i):
                left, right = unit[:i].strip(), unit[i + len(conn) :].strip()
                if (
                    len(left) >= 2
                    and len(right) >= 2
                    and left.endswith(_UNIT_SUFFIXES)
                    and right.endswith(_UNIT_SUFFIXES)
                ):
                    return [left, *_split_connectors(right)]
                break
    return [unit]


def split_units(text: str) -> list[str]:
    """Split a written list of units into unit names, in order."""
    units: list[str] = []
    for part in _split_top(text.strip(" 。.：:"), _SEPARATORS):
        for unit in _split_connectors(part):
            unit = _TRAILING_ETC.sub("", unit).strip(" 。.：:")
            if unit and unit not in units:
                units.append(unit)
    return units


def _parse_fields(content: str) -> tuple[Units, str] | None:
    """Parse 'label：value' fields; return the units by role and the non-role fields."""
    matches = list(_FIELD.finditer(content))
    if not matches or content[: matches[0].start()].strip(" ，,；;"):
        return None
    lead: list[str] = []
    support: list[str] = []
    resp: list[str] = []
    kept: list[str] = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(content)
        label = m.group("l1") or m.group("l2") or ""
        value = content[m.end() : end].strip(" \t，,；;。、")
        if re.fullmatch(_OTHER_LABEL, label):
            if value:
                kept.append(f"{label}：{value}")
            continue
        {"lead": lead, "support": support, "resp": resp}[_role(label)].extend(split_units(value))
    return (lead, support, resp), "；".join(kept)


def _parse_verbs(content: str) -> Units | None:
    """Parse （X牵头，Y配合）: every clause must end with a role verb."""
    if "。" in content or len(content) > 120:
        return None
    lead: list[str] = []
    support: list[str] = []
    resp: list[str] = []
    clauses = _split_top(content, "，,；;")
    if not clauses:
        return None
    for clause in clauses:
        m = _VERB_CLAUSE.match(clause)
        if not m:
            return None
        units = split_units(m.group("units"))
        if not units:
            return None
        verb = m.group("verb")
        if verb.startswith("牵头"):
            lead.extend(units)
        elif verb.startswith(("配合", "参与", "协助", "协办", "协同")):
            support.extend(units)
        else:
            resp.extend(units)
    return lead, support, resp


def _bracket_spans(text: str) -> list[tuple[int, int]]:
    """Top-level bracket spans (start, end-exclusive), nested brackets included."""
    spans: list[tuple[int, int]] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            if depth == 0:
                start = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


_DOUBLE_PUNCT = re.compile(r"([。；;，,])\s*([。；;，,])")
_PUNCT_RANK = {"。": 3, "；": 2, ";": 2, "，": 1, ",": 1}


def _stronger(m: re.Match[str]) -> str:
    first, second = m.group(1), m.group(2)
    return first if _PUNCT_RANK[first] >= _PUNCT_RANK[second] else second


def _tidy(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = _DOUBLE_PUNCT.sub(_stronger, line.strip())
        line = line.lstrip("，,；; ")
        if line:
            lines.append(line)
    return "\n".join(lines)


def extract_responsibility(text: str) -> tuple[str, list[str], list[str]]:
    """Remove responsibility notes from text; return (text, lead units, support units)."""
    lead: list[str] = []
    support: list[str] = []
    resp: list[str] = []

    def take(units: Units) -> None:
        lead.extend(units[0])
        support.extend(units[1])
        resp.extend(units[2])

    # Bracketed notes, read in order, then replaced from the end so offsets hold.
    replacements: list[tuple[int, int, str]] = []
    for start, end in _bracket_spans(text):
        content = text[start + 1 : end - 1]
        if _NOTE_START.match(content):
            parsed = _parse_fields(content.strip())
            if parsed is not None:
                take(parsed[0])
                kept = f"{text[start]}{parsed[1]}{text[end - 1]}" if parsed[1] else ""
                replacements.append((start, end, kept))
        else:
            verbs = _parse_verbs(content.strip())
            if verbs is not None:
                take(verbs)
                replacements.append((start, end, ""))
    for start, end, kept in reversed(replacements):
        text = text[:start] + kept + text[end:]

    # Notes that run to the end of their line.
    out_lines = []
    for line in text.split("\n"):
        m = _LINE_NOTE.search(line)
        if m:
            parsed = _parse_fields(line[m.end() :].strip())
            if parsed is not None:
                take(parsed[0])
                line = line[: m.start()] + parsed[1]
        out_lines.append(line)
    text = _tidy("\n".join(out_lines))

    if lead:
        support = support + resp
    elif resp:
        lead, support = resp[:1], resp[1:] + support
    lead = list(dict.fromkeys(lead))
    support = [u for u in dict.fromkeys(support) if u not in lead]
    return text, lead, support
