"""parse_plan_lines on the sample plan, synthetic plans in tests/data/plans and small cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.i18n import Translator
from bot.importer.document import parse_plan_lines
from bot.importer.model import ParsedPlan, PlanFormatError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
PLANS = Path(__file__).resolve().parent / "data" / "plans"


def parse_file(path: Path) -> ParsedPlan:
    return parse_plan_lines(path.read_text(encoding="utf-8").splitlines(), source=path.name)


def titles(plan: ParsedPlan) -> list[str]:
    return [item.title for item in plan.items]


# ---------------------------------------------------------------- the sample plan


@pytest.fixture(scope="module")
def sample() -> ParsedPlan:
    return parse_file(SAMPLE)


def test_sample_header(sample: ParsedPlan) -> None:
    assert sample.doc_number == "江教办〔2023〕5号"
    assert sample.title == "江门市教育局2023年工作要点"
    assert sample.issuer == "江门市教育局"
    assert sample.issued_on == date(2023, 3, 15)
    assert sample.contact_name == "刘永强"
    assert sample.contact_phone == "3503835"


def test_sample_sections(sample: ParsedPlan) -> None:
    assert [(s.number, s.label) for s in sample.sections] == [
        (1, "一"),
        (2, "二"),
        (3, "三"),
        (4, "四"),
        (5, "五"),
        (6, "六"),
    ]
    assert sample.sections[0].title == "加强党的领导,全面提升教育系统党的建设水平"
    assert sample.sections[3].title == "落实“新强师工程”,建设高素质教师队伍"
    assert sample.sections[4].title == "夯实安全保障根基,维护教育系统安全稳定"


def test_sample_items(sample: ParsedPlan) -> None:
    items = sample.items
    assert len(items) == 27
    assert [item.number for item in items] == list(range(1, 28))
    assert [item.label for item in items] == [str(n) for n in range(1, 28)]
    assert items[0].title == "深入学习宣传贯彻党的二十大精神"
    assert items[8].title == "持续扩增教育优质资源"
    assert items[18].title == "推进“平安校园”建设"
    assert items[26].title == "着力推进教育综合督导工作"
    per_section = [sum(1 for i in items if i.section == n) for n in range(1, 7)]
    assert per_section == [4, 3, 8, 3, 2, 7]
    assert all(item.subsection is None for item in items)


def test_sample_bodies(sample: ParsedPlan) -> None:
    item2 = sample.items[1]
    assert "推进基层党建特色项目培育" in item2.body
    assert item2.body.startswith("提升基层党建工作质量。")
    assert "\n" not in item2.body
    assert sample.items[0].body.startswith("学深悟透党的创新理论。")
    # The preamble is no item and no body.
    assert all("总体思路" not in item.body for item in sample.items)
    # Header lines are not carried into anything.
    assert all("联系人" not in item.body for item in sample.items)


# ---------------------------------------------------------------- synthetic plans


def test_restart_numbering_per_section() -> None:
    plan = parse_file(PLANS / "restart_numbering.txt")
    assert plan.doc_number == "恩农〔2023〕8号"
    assert plan.title == "恩平市农业农村局2023年工作计划"
    assert plan.issuer == "恩平市农业农村局"
    assert plan.issued_on == date(2023, 2, 20)
    assert (plan.contact_name, plan.contact_phone) == ("陈晓明", "0750-7712345")
    assert [s.title for s in plan.sections] == [
        "稳定粮食和重要农产品生产供给",
        "推进农业产业高质量发展",
        "建设宜居宜业和美乡村",
    ]
    assert [i.number for i in plan.items] == list(range(1, 9))
    assert [i.label for i in plan.items] == [
        "一.1",
        "一.2",
        "一.3",
        "二.1",
        "二.2",
        "三.1",
        "三.2",
        "三.3",
    ]
    assert [i.section for i in plan.items] == [1, 1, 1, 2, 2, 3, 3, 3]
    assert plan.items[0].title == "稳定粮食播种面积"
    assert plan.items[0].body.startswith("全年粮食播种面积稳定在35万亩以上")
    deadlines = [i.deadline for i in plan.items]
    assert deadlines == [
        None,
        date(2023, 10, 31),
        None,
        date(2023, 6, 30),
        None,
        None,
        date(2023, 12, 31),
        date(2023, 9, 30),
    ]


def test_three_levels() -> None:
    plan = parse_file(PLANS / "three_levels.txt")
    assert plan.doc_number == "台教〔2023〕3号"
    assert plan.title == "台山市2023年教育工作要点"
    assert plan.issuer == "台山市教育局"
    assert plan.issued_on == date(2023, 3, 1)
    assert plan.contact_name is None and plan.contact_phone is None
    assert len(plan.sections) == 2
    assert titles(plan) == [
        "深入学习贯彻党的二十大精神",
        "落实意识形态工作责任制",
        "推进中小学校党组织领导的校长负责制",
        "实施党建品牌培育工程",
        "推进学前教育普惠发展",  # a （一） with no 1. below it is an item itself
        "扩大优质学位供给",
        "深化集团化办学",
        "落实“双减”政策",
    ]
    assert [i.subsection for i in plan.items] == [
        "加强政治建设",
        "加强政治建设",
        "加强基层党组织建设",
        "加强基层党组织建设",
        None,
        "推进义务教育优质均衡发展",
        "推进义务教育优质均衡发展",
        "推进义务教育优质均衡发展",
    ]
    # Numbers restart under each subsection: running numbers, labels made unique.
    assert [i.number for i in plan.items] == list(range(1, 9))
    assert [i.label for i in plan.items] == [
        "一.一.1",
        "一.一.2",
        "一.二.1",
        "一.二.2",
        "二.一",
        "二.二.1",
        "二.二.2",
        "二.二.3",
    ]
    assert plan.items[2].deadline == date(2023, 6, 30)
    assert plan.items[5].lead_units == ["计划财务股"]
    assert plan.items[5].support_units == ["基础教育股"]
    assert plan.items[5].body == "新增公办学位3000个。"
    # (1)(2)(3) below a 1. item are points of its body, not items.
    assert "（1）台城教育集团；\n（2）广海教育集团；" in plan.items[6].body


def test_two_levels_and_signature_at_the_end() -> None:
    plan = parse_file(PLANS / "two_levels_signature_at_end.txt")
    assert plan.title == "鹤山市市场监督管理局2023年重点工作安排"
    assert plan.doc_number is None
    assert plan.issuer == "鹤山市市场监督管理局"
    assert plan.issued_on == date(2023, 1, 30)
    assert (plan.contact_name, plan.contact_phone) == ("黄丽", "8888123")
    assert [s.title for s in plan.sections] == ["优化营商环境", "守牢安全底线", "加强市场秩序监管"]
    assert len(plan.items) == 7
    assert plan.items[0].title == "深化商事制度改革"
    assert plan.items[0].body.startswith("全面推行经营主体登记“一网通办”")
    assert [i.label for i in plan.items][:3] == ["一.一", "一.二", "二.一"]
    assert plan.items[1].deadline == date(2023, 12, 31)  # 年内
    assert plan.items[3].deadline == date(2023, 6, 30)
    last = plan.items[-1]
    assert last.body == "每万人口高价值发明专利拥有量达到3件。"  # no signature, no contact


def test_fullwidth_numbers_and_chinese_date() -> None:
    plan = parse_file(PLANS / "fullwidth_numbers.txt")
    assert plan.doc_number == "开府办[2023]3号"
    assert plan.issued_on == date(2023, 1, 16)
    assert plan.issuer == "开平市人民政府办公室"
    assert plan.title == "开平市2023年民生实事工作方案"
    assert [i.number for i in plan.items] == [1, 2, 3, 4, 5, 6]
    assert [i.label for i in plan.items] == ["1", "2", "3", "4", "5", "6"]
    assert [i.section for i in plan.items] == [1, 1, 2, 2, 3, 3]
    assert titles(plan)[:3] == ["新增公办学位", "改善农村学校办学条件", "提升基层医疗服务能力"]
    assert plan.items[0].body.endswith("（１）市区新增学位1200个；\n（２）镇区新增学位800个。")
    assert plan.items[1].deadline == date(2023, 8, 31)
    assert plan.items[5].deadline == date(2023, 8, 31)  # 9月前: before September


def test_ocr_wrapping_and_page_numbers() -> None:
    plan = parse_file(PLANS / "ocr_wrapped.txt")
    assert plan.title == "蓬江区2023年卫生健康工作要点"
    assert plan.issuer == "江门市蓬江区卫生健康局"
    assert plan.issued_on == date(2023, 3, 8)
    assert [s.title for s in plan.sections] == [
        "坚持党建引领，推动全面从严治党向纵深发展，全面提升卫生健康系统党建工作质量",
        "深化医药卫生体制改革",
        "全力保障人民群众生命健康",
        "加强公共卫生体系建设",
    ]
    assert [i.number for i in plan.items] == list(range(1, 8))
    item1 = plan.items[0]
    assert item1.title == "加强公立医院党的建设"
    assert "院长负责制，推动公立医院" in item1.body
    assert "年底前实现二级以上公立医院" in item1.body  # joined across the page number
    assert "\n" not in item1.body and "- 1 -" not in item1.body
    assert item1.deadline == date(2023, 12, 31)
    assert "薪酬制度改革实施方案，建立健全" in plan.items[3].body  # across "—2—"
    # A short heading without punctuation stays whole; its body follows.
    item7 = plan.items[6]
    assert item7.title == "强化疾病预防控制"
    assert item7.body.startswith("完善疾病预防控制体系")
    assert item7.body.endswith("保持在95%以上。")
    assert all("第3页" not in i.body and "卫生健康局" not in i.body for i in plan.items)


def test_responsibility_notes() -> None:
    plan = parse_file(PLANS / "responsibility_notes.txt")
    units = [(i.lead_units, i.support_units) for i in plan.items]
    assert units == [
        (["市教育局机关党委"], ["各县（市、区）教育局"]),
        (["市教育局组织人事科"], []),
        (["市纪委监委驻市教育局纪检监察组"], ["局机关各科室", "局属各单位"]),
        (["市教育局"], ["市发展改革局", "市财政局", "市自然资源局", "市住房城乡建设局"]),
        (["基础教育科"], []),
        (["市教育局"], ["各县（市、区）人民政府"]),
        (["市教育局"], ["市财政局", "各县（市、区）人民政府"]),
        (["市教育局"], ["市人力资源社会保障局"]),
        (["市财政局"], ["市人力资源社会保障局"]),
    ]
    for item in plan.items:
        text = item.title + item.body
        assert "单位" not in text and "负责" not in text and "牵头" not in text
    assert plan.items[0].title == (
        "深入学习宣传贯彻党的二十大精神，推动党的创新理论进校园、进课堂、进头脑"
    )
    assert plan.items[3].deadline == date(2023, 12, 31)
    assert plan.items[3].body == "（完成时限：2023年12月底前）"
    assert plan.items[6].body == ""  # the separate 责任单位 line is gone


def test_deadlines_and_items_without_sections() -> None:
    plan = parse_file(PLANS / "deadlines_no_sections.txt")
    assert len(plan.sections) == 1
    assert plan.sections[0].title == plan.title == "新会区教育局2023年重点工作任务清单"
    assert plan.sections[0].label == ""
    assert all(i.section == 1 for i in plan.items)
    assert [i.number for i in plan.items] == list(range(1, 9))
    assert [i.deadline for i in plan.items] == [
        date(2023, 6, 30),
        date(2023, 6, 30),
        date(2023, 9, 30),
        date(2023, 8, 31),
        date(2023, 12, 31),
        date(2023, 11, 30),
        date(2023, 12, 31),
        None,
    ]
    assert plan.items[6].title == "推进教育信息化2.0行动"
    assert plan.items[6].body == "完成时限：2023年12月31日前"


def test_title_first_without_header() -> None:
    plan = parse_file(PLANS / "title_first_no_header.txt")
    assert plan.title == "江海区2023年文化广电旅游体育工作要点"
    assert (plan.doc_number, plan.issuer, plan.issued_on) == (None, None, None)
    assert (plan.contact_name, plan.contact_phone) == (None, None)
    assert [s.label for s in plan.sections] == ["一", "二", "三"]
    assert plan.sections[0].title == "繁荣发展文化事业"
    assert [i.number for i in plan.items] == list(range(1, 7))
    assert plan.items[0].title == "完善公共文化服务体系"


def test_no_structure_is_an_error() -> None:
    with pytest.raises(PlanFormatError) as caught:
        parse_file(PLANS / "not_a_plan.txt")
    assert str(caught.value) == (
        "not_a_plan.txt: no plan structure found "
        "(expected sections like 一、... and items like 1. ...)"
    )
    assert "\n" not in str(caught.value)
    assert caught.value.render(Translator("zh-CN")).startswith(
        "not_a_plan.txt：没有找到工作计划的层次结构。"
    )


@pytest.mark.parametrize("lines", [[], [""], ["   ", "\u3000\u3000", "\t"]])
def test_empty_input_is_an_error(lines: list[str]) -> None:
    with pytest.raises(PlanFormatError, match=r"^plan\.txt: the file is empty$"):
        parse_plan_lines(lines, source="plan.txt")


# ---------------------------------------------------------------- small cases


def test_parts_chapters_and_subpoints() -> None:
    plan = parse_plan_lines(
        [
            "附件",
            "江门市教育局2023年工作要点",
            "第一部分 2022年工作回顾",
            "2022年，全市教育系统取得明显成效。",
            "第二部分 2023年重点工作",
            "一、加强党的建设",
            "1.深入学习贯彻党的二十大精神。组织全员培训。",
            "2.加强基层党组织建设。内容（牵头单位：机关党委）。",
            "二、推进教育改革",
            "3.深化教育评价改革。3月底前印发方案。",
            "（1）改革中考；",
            "（2）改革高考。",
            "抄送：市委办公室。",
            "江门市教育局办公室  2023年3月16日印发",
        ]
    )
    assert plan.title == "江门市教育局2023年工作要点"
    assert [s.title for s in plan.sections] == ["2022年工作回顾", "2023年重点工作"]
    assert [i.section for i in plan.items] == [2, 2, 2]
    assert [i.subsection for i in plan.items] == ["加强党的建设", "加强党的建设", "推进教育改革"]
    assert plan.items[1].lead_units == ["机关党委"]
    assert plan.items[2].body == "3月底前印发方案。\n（1）改革中考；\n（2）改革高考。"
    assert plan.items[2].deadline == date(2023, 3, 31)


def test_heading_and_body_on_one_line() -> None:
    plan = parse_plan_lines(
        [
            "一、加强党的建设",
            "（一）加强政治建设。全面落实党建工作责任制；健全制度。",
            "（二）加强作风建设：持续纠治“四风”。",
            "二、推进改革",
            "（一）深化综合改革",
            "推进各项改革，确保取得实效。",
        ],
        source="x.txt",
    )
    assert plan.title == "x"
    assert titles(plan) == ["加强政治建设", "加强作风建设", "深化综合改革"]
    assert [i.body for i in plan.items] == [
        "全面落实党建工作责任制；健全制度。",
        "持续纠治“四风”。",
        "推进各项改革，确保取得实效。",
    ]


def test_wrapped_lines_that_look_numbered_stay_text() -> None:
    plan = parse_plan_lines(
        [
            "2023年工作计划",
            "一、重点工作",
            "1.做好招生工作。认真组织好",
            "3、4月份的报名工作，做好一、",
            "二年级新生的分班工作。",
            "2.做好安全工作。",
        ]
    )
    assert titles(plan) == ["做好招生工作", "做好安全工作"]
    assert plan.items[0].body == "认真组织好3、4月份的报名工作，做好一、二年级新生的分班工作。"


def test_items_restarting_without_sections_use_running_numbers() -> None:
    plan = parse_plan_lines(
        [
            "某局2023年工作要点",
            "（一）党建工作",
            "1.抓好学习。",
            "2.抓好培训。",
            "（二）业务工作",
            "1.抓好项目。",
        ]
    )
    # （一） is the section level here.
    assert [s.title for s in plan.sections] == ["党建工作", "业务工作"]
    assert [(i.number, i.label) for i in plan.items] == [(1, "一.1"), (2, "一.2"), (3, "二.1")]


def test_indented_paragraphs_are_not_joined() -> None:
    plan = parse_plan_lines(
        [
            "某局2023年工作要点",
            "一、重点工作",
            "\u3000\u30001.抓好学习",
            "\u3000\u3000组织学习党的二十大精神，开展专题培训",
            "\u3000\u3000每季度组织一次集中学习",
            "结合实际抓好落实。",
        ]
    )
    assert plan.items[0].title == "抓好学习"
    assert plan.items[0].body == (
        "组织学习党的二十大精神，开展专题培训\n每季度组织一次集中学习结合实际抓好落实。"
    )


def _rewrap(lines: list[str], width: float) -> list[str]:
    """Break lines as a PDF would at the given width, with page numbers in between."""
    no_start = set("，。、；：？！”）》,.;:)")
    out: list[str] = []
    for line in lines:
        current = ""
        for ch in line:
            wide = sum(0.5 if ord(c) < 128 else 1.0 for c in current + ch)
            if wide > width and ch not in no_start:
                out.append(current)
                current = ch
            else:
                current += ch
        out.append(current)
    paged: list[str] = []
    for n, line in enumerate(out, start=1):
        paged.append(line)
        if n % 22 == 0:
            paged += ["", f"- {n // 22} -", ""]
    return paged


@pytest.mark.parametrize("width", [26, 28, 30])
def test_sample_rewrapped_like_a_pdf_parses_the_same(sample: ParsedPlan, width: int) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    plan = parse_plan_lines(_rewrap(lines, width), source="sample.pdf")
    assert (plan.title, plan.doc_number, plan.issuer, plan.issued_on) == (
        sample.title,
        sample.doc_number,
        sample.issuer,
        sample.issued_on,
    )
    assert (plan.contact_name, plan.contact_phone) == ("刘永强", "3503835")
    assert [s.title for s in plan.sections] == [s.title for s in sample.sections]
    assert [(i.number, i.section, i.title) for i in plan.items] == [
        (i.number, i.section, i.title) for i in sample.items
    ]
    # Same text; a paragraph break may appear where a line ended exactly with 。
    assert [i.body.replace("\n", "") for i in plan.items] == [i.body for i in sample.items]


def test_numbered_attachment_list_in_the_header_is_not_structure() -> None:
    plan = parse_plan_lines(
        [
            "关于印发《某局2023年工作要点》的通知",
            "现将有关文件印发给你们，请遵照执行。",
            "附件：1.某局2023年工作要点",
            "2.某局2023年重点项目表",
            "某局",
            "2023年3月1日",
            "某局2023年工作要点",
            "一、重点工作",
            "1.抓好学习。",
            "2.抓好落实。",
        ]
    )
    assert plan.title == "某局2023年工作要点"
    assert plan.issuer == "某局"
    assert [s.title for s in plan.sections] == ["重点工作"]
    assert titles(plan) == ["抓好学习", "抓好落实"]


def test_notes_on_headings_and_inherited_units() -> None:
    plan = parse_plan_lines(
        [
            "某县2023年重点工作任务分工",
            "一、加强党的建设（牵头单位：县委组织部；完成时限：2023年6月底前）",
            "1.抓好理论学习。",
            "2.抓好干部培训。（责任单位：县委党校）",
            "二、推进重点项目",
            "3.抓好项目建设（牵头单位：县发展改革局；完成时限：年底前）。加快项目进度。",
        ]
    )
    assert plan.sections[0].title == "加强党的建设"
    first, second, third = plan.items
    assert (first.lead_units, first.deadline) == (["县委组织部"], date(2023, 6, 30))
    assert (second.lead_units, second.deadline) == (["县委党校"], date(2023, 6, 30))
    assert third.title == "抓好项目建设"
    assert third.body == "（完成时限：年底前）\n加快项目进度。"
    assert (third.lead_units, third.deadline) == (["县发展改革局"], date(2023, 12, 31))
