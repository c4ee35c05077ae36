"""Tests for bot.importer.targets: quantitative targets in work-item text."""

from pathlib import Path

import pytest

from bot.importer.model import COMPARATORS, ParsedTarget
from bot.importer.targets import extract_targets

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "jiangmen-edu-2023-workpoints.txt"

# (sentence, comparator, value, unit, fragment the metric must contain)
REQUIRED = [
    (
        "2023年确保完成学校书记校长分设、重新修订议事规则等改革任务的80%以上",
        ">=",
        80,
        "%",
        "改革任务",
    ),
    ("新增学位超1万个", ">", 10000, "个", "新增学位"),
    (
        "全市儿童青少年总体近视率比2022年下降0.5个百分点",
        "decrease",
        0.5,
        "个百分点",
        "近视率",
    ),
    ("公办幼儿园在园人数(不含购买学位)占比50%以上", ">=", 50, "%", "占比"),
    ("公办幼儿园和普惠性民办幼儿园占比85%以上", ">=", 85, "%", "普惠性民办幼儿园占比"),
    ("培育15个市级优质教育集团", "=", 15, "个", "市级优质教育集团"),
]

# (text, comparator, value, unit, metric)
GENERAL = [
    ("新建改扩建幼儿园20所", "=", 20, "所", "新建改扩建幼儿园"),
    ("培训教师3000人次以上", ">=", 3000, "人次", "培训教师"),
    ("义务教育巩固率保持在99%以上", ">=", 99, "%", "义务教育巩固率"),
    ("大班额比例控制在5%以内", "<=", 5, "%", "大班额比例"),
    ("本科录取率提高2个百分点", "increase", 2, "个百分点", "本科录取率"),
    ("建成智慧校园示范校30所", "=", 30, "所", "建成智慧校园示范校"),
    ("新建二十所公办幼儿园", "=", 20, "所", "新建公办幼儿园"),
    ("全年招聘教师三千名", "=", 3000, "名", "招聘教师"),
    ("开展家长培训1.2万人次", "=", 12000, "人次", "开展家长培训"),
    ("新增城镇就业3.5万人", "=", 35000, "人", "新增城镇就业"),
    ("投入资金3.5亿元", "=", 350000000, "元", "投入资金"),
    ("新增经费300万元以上", ">=", 3000000, "元", "新增经费"),
    ("学前三年毛入园率达到98%", ">=", 98, "%", "学前三年毛入园率"),
    ("高中阶段毛入学率98.5%", "=", 98.5, "%", "高中阶段毛入学率"),
    ("义务教育巩固率100%", ">=", 100, "%", "义务教育巩固率"),
    ("公办园在园幼儿占比达到百分之五十以上", ">=", 50, "%", "公办园在园幼儿占比"),
    ("新生儿缺陷发生率控制在5‰以下", "<=", 5, "‰", "新生儿缺陷发生率"),
    ("体质健康优良率同比提升5%", "increase", 5, "%", "体质健康优良率"),
    ("近视率较上年降低1个百分点", "decrease", 1, "个百分点", "近视率"),
    ("校外培训机构压减50%", "decrease", 50, "%", "校外培训机构"),
    ("学科类培训机构减少到100家以内", "<=", 100, "家", "学科类培训机构"),
    ("学校数量由120所增加到150所", ">=", 150, "所", "学校数量"),
    ("新增公办学位2万多个", ">", 20000, "个", "新增公办学位"),
    ("新增普惠性学位5000余个", ">", 5000, "个", "新增普惠性学位"),
    ("就业率稳定在95%左右", "=", 95, "%", "就业率"),
    ("城镇调查失业率不超过5.5%", "<=", 5.5, "%", "城镇调查失业率"),
    ("小学每班不超过45人", "<=", 45, "人", "小学每班"),
    ("优良率超过50%", ">", 50, "%", "优良率"),
    ("不及格率低于3%", "<", 3, "%", "不及格率"),
    ("流失率少于1%", "<", 1, "%", "流失率"),
    ("生均校舍面积不低于8平方米", ">=", 8, "平方米", "生均校舍面积"),
    ("新改建农村公路120公里", "=", 120, "公里", "新改建农村公路"),
    ("举办家庭教育讲座100场以上", ">=", 100, "场", "举办家庭教育讲座"),
    ("开展送教下乡活动不少于30次", ">=", 30, "次", "开展送教下乡活动"),
    ("改造功能室200间", "=", 200, "间", "改造功能室"),
    ("配备交互式电子白板1000台", "=", 1000, "台", "配备交互式电子白板"),
    ("购置实验仪器500套", "=", 500, "套", "购置实验仪器"),
    ("配送图书10万本", "=", 100000, "本", "配送图书"),
    ("征集优秀论文300篇", "=", 300, "篇", "征集优秀论文"),
    ("开设劳动教育课程不少于5门", ">=", 5, "门", "开设劳动教育课程"),
    ("录制精品微课200节", "=", 200, "节", "录制精品微课"),
    ("学生每年参加社会实践不少于10天", ">=", 10, "天", "学生每年参加社会实践"),
    ("校内体育活动时间不少于2小时", ">=", 2, "小时", "校内体育活动时间"),
    ("新教师岗前培训不少于120学时", ">=", 120, "学时", "新教师岗前培训"),
    ("劳动教育课每周不少于1课时", ">=", 1, "课时", "劳动教育课"),
    ("发放教师资格证书500张", "=", 500, "张", "发放教师资格证书"),
    ("新增民办学校10家及以上", ">=", 10, "家", "新增民办学校"),
    ("完成省级课题20项以上", ">=", 20, "项", "省级课题"),
    ("选派骨干教师50人到乡村学校支教", "=", 50, "人", "选派骨干教师"),
    ("新开工项目100个以上", ">=", 100, "个", "新开工项目"),
    ("每个镇至少建设1所公办中心幼儿园", ">=", 1, "所", "建设公办中心幼儿园"),
    ("至少新建一所公办幼儿园", ">=", 1, "所", "新建公办幼儿园"),
    ("新增学位超１万个", ">", 10000, "个", "新增学位"),
    ("经费不低于公用经费预算总额的5%", ">=", 5, "%", "经费"),
    ("粮食产量稳定在100万吨以上", ">=", 1000000, "吨", "粮食产量"),
    ("开展送教下乡活动20场次", "=", 20, "场次", "开展送教下乡活动"),
    ("完成1000户危房改造", "=", 1000, "户", "危房改造"),
]

# Text that states no quantitative target.
NO_TARGET = [
    "评选第二批江门市教育系统党建示范校",
    "举办第三届江门市中小学劳动教育周",
    "贯彻市委第十四次党代会和十四届四次全会精神",
    "制定江门市学前教育“十四五”发展行动计划",
    "继续发展足球、篮球、排球三大球",
    "深入推进“双减”工作",
    "确保一般公共预算教育支出和生均一般公共预算教育支出“两个只增不减”",
    "着力办好办强县域内乡镇中心幼儿园、中心小学和寄宿制学校“三所学校”",
    "进一步巩固提升专职保安员配备、一键报警装置防控体系“四个100%”水平",
    "深化信息技术应用能力提升工程2.0在教育教学改革应用",
    "加快推进基于Ipv6和5G的教育专网迭代升级",
    "开展市直8所公办幼儿园与结队帮扶的12所镇中心幼儿园帮扶工作中期总结",
    "江门市教育局2023年工作要点",
    "2023年6月底前完成，第3季度开展评估",
    "江门市教育局\n2023年3月15日",
    "印发《关于做好2023年中考工作的通知》(江教〔2023〕12号)",
    "(联系人:刘永强,电话:3503835。)",
    "全面落实免试就近入学全覆盖和“公民同招”",
    "实现一人一档,推进一次性补助发放",
    "打造一批名校,建设一所一品特色学校",
    "深化三个课堂应用,确保两个只增不减",
    "全市义务教育阶段学校50人以上大班额全部消除",
    "对3000人以上的学校开展专项检查",
    "全市共有中小学校500所,在校生30万人",
    "PM2.5平均浓度持续下降",
    "组织学校开展心理健康筛查",
    "新建10-20所学校",
    "落实全面从严治党主体责任制和中央八项规定精神",
    "强化“三名”工作室示范引领作用",
    "推进“三类五阶段”进阶式培养培训项目",
    "持续做好“六项管理”专项督导",
    "",
]


def _one(text: str) -> ParsedTarget:
    """The single target in text."""
    targets = extract_targets(text)
    assert len(targets) == 1, targets
    return targets[0]


def _sample_targets() -> list[tuple[str, ParsedTarget]]:
    """(paragraph, target) for every target found in the sample plan, paragraph by paragraph."""
    found: list[tuple[str, ParsedTarget]] = []
    for paragraph in SAMPLE.read_text(encoding="utf-8").splitlines():
        found.extend((paragraph, target) for target in extract_targets(paragraph))
    return found


@pytest.mark.parametrize(("text", "comparator", "value", "unit", "fragment"), REQUIRED)
def test_required_targets(
    text: str, comparator: str, value: float, unit: str, fragment: str
) -> None:
    target = _one(text)
    assert (target.comparator, target.value, target.unit) == (comparator, value, unit)
    assert fragment in target.metric
    assert target.text in text
    assert fragment in target.text


@pytest.mark.parametrize(("text", "comparator", "value", "unit", "metric"), GENERAL)
def test_general_targets(text: str, comparator: str, value: float, unit: str, metric: str) -> None:
    target = _one(text)
    assert (target.comparator, target.value, target.unit, target.metric) == (
        comparator,
        value,
        unit,
        metric,
    )
    assert target.text in text


@pytest.mark.parametrize("text", NO_TARGET)
def test_no_target(text: str) -> None:
    assert extract_targets(text) == []


@pytest.mark.parametrize(
    ("words", "comparator"),
    [
        *((f"X率{w}60%", ">=") for w in ("达到", "不少于", "不低于", "至少", "保持在")),
        *((f"X率60%{w}", ">=") for w in ("以上", "及以上", "或以上")),
        *((f"X率{w}60%", ">") for w in ("超", "超过", "多于", "高于")),
        *((f"X率60%{w}", "<=") for w in ("以下", "以内")),
        *((f"X率{w}60%", "<=") for w in ("不超过", "不高于", "降至", "下降到")),
        ("X率控制在60%以内", "<="),
        *((f"X率{w}60%", "<") for w in ("低于", "少于")),
        *((f"X率{w}60%", "decrease") for w in ("下降", "降低", "减少")),
        *((f"X率{w}60%", "increase") for w in ("提高", "提升", "增长", "增加")),
        *((f"X率{w}60%", ">=") for w in ("提高到", "提升至")),
    ],
)
def test_comparator_vocabulary(words: str, comparator: str) -> None:
    target = _one(words.replace("X", "合格"))
    assert (target.comparator, target.value, target.unit, target.metric) == (
        comparator,
        60,
        "%",
        "合格率",
    )


def test_several_targets_in_order() -> None:
    text = (
        "按照公办幼儿园在园人数(不含购买学位)占比50%以上、公办幼儿园和普惠性民办幼儿园"
        "占比85%以上的目标,以县(市、区)为单位制定2023年公办幼儿园学位建设计划。"
    )
    targets = extract_targets(text)
    assert [(t.value, t.comparator) for t in targets] == [(50, ">="), (85, ">=")]
    assert targets[0].text == "公办幼儿园在园人数(不含购买学位)占比50%以上"
    assert targets[1].text == "公办幼儿园和普惠性民办幼儿园占比85%以上"
    assert targets[0].metric == "公办幼儿园在园人数(不含购买学位)占比"


def test_list_of_counts_keeps_the_verb() -> None:
    targets = extract_targets("新建20所幼儿园、10所小学,新增学位1.2万个。")
    assert [(t.metric, t.value, t.unit) for t in targets] == [
        ("新建幼儿园", 20, "所"),
        ("新建小学", 10, "所"),
        ("新增学位", 12000, "个"),
    ]


def test_count_verb_carries_over_within_a_sentence() -> None:
    targets = extract_targets("全年新增幼儿园学位5000个,义务教育学位1.5万个;新建中小学校12所。")
    assert [(t.metric, t.value) for t in targets] == [
        ("新增幼儿园学位", 5000),
        ("义务教育学位", 15000),
        ("新建中小学校", 12),
    ]


def test_count_verb_does_not_carry_into_a_description() -> None:
    targets = extract_targets("新增学位5000个,全市共有学校500所。新增学位5000个。全市学校500所。")
    assert [(t.metric, t.value) for t in targets] == [("新增学位", 5000), ("新增学位", 5000)]


def test_noun_led_counts_after_a_verb() -> None:
    text = "每个县(市、区)重点培育具有示范引领、辐射带动作用的初中2所、高中1所。"
    targets = extract_targets(text)
    assert [(t.metric, t.comparator, t.value, t.unit) for t in targets] == [
        ("初中", "=", 2, "所"),
        ("高中", "=", 1, "所"),
    ]


def test_empty_metric_is_taken_from_the_previous_target() -> None:
    targets = extract_targets("近视率每年下降1个百分点,到2025年下降至50%以下。")
    assert [(t.metric, t.comparator, t.value) for t in targets] == [
        ("近视率", "decrease", 1),
        ("近视率", "<=", 50),
    ]


def test_full_width_text_is_quoted_as_written() -> None:
    target = _one("每个县（市、区）至少创建２所省级示范校。")
    assert (target.comparator, target.value, target.unit) == (">=", 2, "所")
    assert target.text == "创建２所省级示范校"


def test_wrapped_line_is_joined() -> None:
    target = _one("全市儿童青少年总体近\n视率比2022年下降0.5个百分点。")
    assert target.metric == "全市儿童青少年总体近视率"
    assert (target.comparator, target.value) == ("decrease", 0.5)


def test_targets_are_well_formed() -> None:
    for text, *_ in REQUIRED + GENERAL:
        for target in extract_targets(text):
            assert target.comparator in COMPARATORS
            assert isinstance(target.value, float)
            assert target.text
            assert not target.additive


def test_sample_plan_contains_required_targets() -> None:
    found = _sample_targets()
    for _text, comparator, value, unit, fragment in REQUIRED:
        matches = [
            t
            for _, t in found
            if (t.comparator, t.value, t.unit) == (comparator, value, unit) and fragment in t.metric
        ]
        assert matches, f"missing {comparator} {value} {unit} ({fragment})"


def test_sample_plan_has_no_false_positives() -> None:
    found = _sample_targets()
    for paragraph, target in found:
        assert target.value not in (2022, 2023), target
        assert target.text in paragraph
        assert target.comparator in COMPARATORS
    # the 帮扶 summary counts schools (8所, 12所) but asks for none
    assert not [t for _, t in found if t.value in (8, 12)]
    # the whole plan states a handful of targets, not dozens
    assert 6 <= len(found) <= 12
