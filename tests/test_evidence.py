"""Evidence files (佐证材料) and voice messages: chat transcripts on both fake platforms, the
stored files, the ledger, and the file checks themselves.

Files are real downloads over loopback HTTP: Telegram's getFile and file URL, WeCom's
media/get; they land content-addressed under DATA_DIR/evidence. A refused or failed file must
leave no row and no file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import Session, select

from bot.events import Attachment, Fetched, FileSink
from bot.evidence import (
    TYPES,
    CappedWriter,
    EvidenceStore,
    FileRefused,
    FileTooBig,
    check_declared,
    display_name,
    file_name,
    sniff,
    type_names,
)
from bot.importer.parse import parse_plan_file
from bot.models import Evidence, MessageLink, PendingVoice
from bot.services import plans
from bot.services.ledger_export import export_ledger
from tests.fakes import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.wecom_api import FakeWeCom
from tests.harness import (
    SAMPLE,
    STRANGER,
    WANG,
    ZHANG,
    Dialog,
    WeComDialog,
    running_bot,
    running_wecom_bot,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8  # about 2 KB
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n" * 20
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 2000
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 1000


def docx() -> bytes:
    """A (minimal) Word document: a zip with the parts Word writes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evidence_rows(engine: Any) -> list[Evidence]:
    with Session(engine) as s:
        return list(s.exec(select(Evidence).order_by(Evidence.id)))  # type: ignore[arg-type]


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under DATA_DIR/evidence (the kept ones, and any leftover)."""
    root = data_dir / "evidence"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def kept(data_dir: Path) -> list[str]:
    """The hashes of the files kept under DATA_DIR/evidence/sha256."""
    return sorted(p.name for p in stored_files(data_dir) if p.parent.parent.name == "sha256")


# --- Telegram ------------------------------------------------------------------------------


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url, evidence_max_bytes=64 * 1024) as dialog:
        yield dialog


def data_dir(dialog: Dialog | WeComDialog) -> Path:
    return Path(dialog.app.settings.data_dir)


async def send(chat: Dialog, user: int, kind: str, content: bytes, **kw: Any) -> list[Any]:
    """The user sends a file; returns the bot's messages to them in answer."""
    before = len(chat.server.messages_to(user))
    update_id = chat.server.user_sends_file(user, kind, content, **kw)
    return await chat._settle(update_id, user, before)


async def test_a_captioned_photo_is_evidence_of_its_report(chat: Dialog) -> None:
    (answer,) = await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    assert "已记录 第9项" in answer.plain_text and "进度：60%" in answer.plain_text
    assert "📎 佐证材料：photo.jpg（2 KB）" in answer.plain_text
    (report,) = chat.reports()
    (row,) = evidence_rows(chat.engine)
    assert (row.report_id, row.item_id, row.kind, row.mime) == (
        report.id,
        report.item_id,
        "photo",
        "image/jpeg",
    )
    assert row.sha256 == sha(JPEG) and row.size == len(JPEG) and row.platform == "telegram"
    path = data_dir(chat) / "evidence" / "sha256" / sha(JPEG)[:2] / sha(JPEG)
    assert path.read_bytes() == JPEG
    assert stored_files(data_dir(chat)) == [path]  # nothing left over in tmp
    status = await chat.says_one(WANG, "/status 9")
    assert "佐证材料：1 份（发送 /files 9 查看）" in status


async def test_a_file_without_caption_joins_the_report_of_the_last_minutes(chat: Dialog) -> None:
    await chat.say(ZHANG, "9 60% 华侨实验小学主体完工")
    chat.clock.advance(timedelta(minutes=3))
    (answer,) = await send(
        chat, ZHANG, "document", PDF, filename="../../验收报告.pdf", mime_type="application/pdf"
    )
    text = answer.plain_text
    assert (
        "已将文件「验收报告.pdf」" in text
        and "第9项「持续扩增教育优质资源」06-01 10:00 进展" in text
    )
    (report,) = chat.reports()
    (row,) = evidence_rows(chat.engine)
    assert row.report_id == report.id and row.name == "验收报告.pdf"
    assert kept(data_dir(chat)) == [sha(PDF)]  # stored by its hash, never by the name sent


async def test_a_file_long_after_the_report_asks_which_item(chat: Dialog) -> None:
    await chat.say(ZHANG, "9 60% 主体完工")
    chat.clock.advance(timedelta(minutes=30))
    (question,) = await send(chat, ZHANG, "video", MP4, filename="现场.mp4", mime_type="video/mp4")
    assert (
        "收到视频「现场.mp4」" in question.plain_text and "哪一项的佐证材料" in question.plain_text
    )
    labels = [label for label, _ in question.buttons]
    assert labels[0].startswith("9. ") and labels[1].startswith("10. ") and labels[2] == "不归档"
    (waiting,) = evidence_rows(chat.engine)
    assert waiting.item_id is None  # waits for the answer
    (answer,) = await chat.click(ZHANG, question.message_id or 0, question.buttons[1][1] or "")
    assert "已将视频「现场.mp4」" in answer.plain_text and "第10项" in answer.plain_text
    (row,) = evidence_rows(chat.engine)
    assert row.item_id == 10 and row.report_id is None  # of the item: no report of it then
    # the same button again is stale
    (again,) = await chat.click(ZHANG, question.message_id or 0, question.buttons[1][1] or "")
    assert "按钮已失效" in again.plain_text


async def test_a_file_replying_to_a_message_about_an_item_goes_there(chat: Dialog) -> None:
    status = (await chat.say(ZHANG, "/status 10"))[0]
    for _ in range(200):  # the link of the answer to its item is written just behind it
        if chat.count(MessageLink):
            break
        await asyncio.sleep(0.01)
    (answer,) = await send(chat, ZHANG, "photo", JPEG, reply_to_message_id=status.message_id)
    assert "第10项" in answer.plain_text
    assert evidence_rows(chat.engine)[0].item_id == 10


async def test_a_file_the_sender_does_not_keep_is_deleted(chat: Dialog) -> None:
    (question,) = await send(chat, ZHANG, "photo", JPEG)
    assert kept(data_dir(chat)) == [sha(JPEG)]
    (answer,) = await chat.click(ZHANG, question.message_id or 0, "不归档")
    assert "照片「photo.jpg」未保存" in answer.plain_text
    assert evidence_rows(chat.engine) == []
    assert stored_files(data_dir(chat)) == []


async def test_a_caption_that_names_no_item_is_asked_about_then_filed(chat: Dialog) -> None:
    question, note = await send(chat, ZHANG, "photo", JPEG, caption="本周召开推进会，进度50%")
    assert "哪一项工作" in question.plain_text  # the report handler's own question
    assert note.plain_text == "📎 照片「photo.jpg」将在您选定事项后作为佐证材料一并归档。"
    answers = await chat.click(ZHANG, question.message_id or 0, question.buttons[0][1] or "")
    assert "已记录 第9项" in answers[-1].plain_text
    assert "📎 佐证材料：photo.jpg" in answers[-1].plain_text
    (report,) = chat.reports()
    (row,) = evidence_rows(chat.engine)
    assert (row.item_id, row.report_id) == (9, report.id)


async def test_a_caption_naming_the_item_files_it_there(chat: Dialog) -> None:
    (answer,) = await send(chat, ZHANG, "document", docx(), filename="方案.docx", caption="第10项")
    assert "已将文件「方案.docx」" in answer.plain_text and "第10项" in answer.plain_text
    assert chat.reports() == []  # a file is no progress report
    (row,) = evidence_rows(chat.engine)
    assert row.item_id == 10 and row.mime.endswith("wordprocessingml.document")
    refused = await send(chat, ZHANG, "document", docx(), filename="方案.docx", caption="第22项")
    assert "没有分配给您" in refused[0].plain_text
    assert len(evidence_rows(chat.engine)) == 1


async def test_an_oversized_file_is_refused_and_nothing_kept(chat: Dialog) -> None:
    big = PDF * 200  # over the 64 KB of this test's EVIDENCE_MAX_BYTES
    (answer,) = await send(chat, ZHANG, "document", big, filename="大.pdf", caption="9 60%")
    assert answer.plain_text == "文件超过 64 KB 上限，未保存。请压缩后重新发送，或分几次发送。"
    assert chat.server.stats["getFile"] == 0  # said so in the message: not even fetched
    # a client that understates the size: the download stops at the cap
    (lied,) = await send(chat, ZHANG, "document", big, filename="大.pdf", file_size=1000)
    assert "上限" in lied.plain_text and chat.server.stats["download"] == 1
    assert chat.reports() == [] and evidence_rows(chat.engine) == []
    assert stored_files(data_dir(chat)) == []


@pytest.mark.parametrize(
    ("content", "filename", "mime"),
    [
        (EXE, "报告.pdf", "application/pdf"),  # a program named as a PDF
        (JPEG, "报告.pdf", "application/pdf"),  # a picture said to be a PDF
        (b"plan:\n  title: x\n", "../../plan.yaml", "application/x-yaml"),  # not a type taken
        (PDF, "报告.pdf", "application/x-msdownload"),  # a PDF declared as a program
    ],
)
async def test_a_type_not_allowed_is_refused(
    chat: Dialog, content: bytes, filename: str, mime: str
) -> None:
    (answer,) = await send(
        chat, ZHANG, "document", content, filename=filename, mime_type=mime, caption="9 60%"
    )
    assert answer.plain_text.startswith(
        "这种文件无法作为佐证材料（只收 PDF、Word、Excel、图片、视频）"
    )
    assert chat.reports() == [] and evidence_rows(chat.engine) == []
    assert stored_files(data_dir(chat)) == []


@pytest.mark.parametrize("fault", ["getFile", "download"])
async def test_a_failed_download_answers_one_line_and_keeps_nothing(
    chat: Dialog, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    if fault == "getFile":
        chat.server.fail_next("getFile", error_code=400, description="Bad Request: wrong file_id")
    else:
        chat.server.http_error_next("download", 502)
    caplog.set_level(logging.DEBUG)
    (answer,) = await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    assert answer.plain_text == "文件未能下载，未保存。请稍后重新发送。"
    assert chat.reports() == [] and evidence_rows(chat.engine) == []
    assert stored_files(data_dir(chat)) == []
    assert any("fetching a telegram file failed" in r.getMessage() for r in caplog.records)
    secret = DEFAULT_TOKEN.split(":", 1)[1]
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_a_telegram_voice_note_cannot_be_read(chat: Dialog) -> None:
    (answer,) = await send(chat, ZHANG, "voice", b"OggS" + b"\x00" * 100)
    assert answer.plain_text.startswith("收到一条语音，但无法识别其中的文字，未作记录。")
    assert chat.reports() == [] and chat.server.stats["getFile"] == 0


async def test_a_strangers_file_is_not_fetched(chat: Dialog) -> None:
    (answer,) = await send(chat, STRANGER, "photo", JPEG)
    assert "还未登记" in answer.plain_text
    assert chat.server.stats["getFile"] == 0 and stored_files(data_dir(chat)) == []


async def test_files_sends_a_leader_the_files(chat: Dialog) -> None:
    await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    await send(chat, ZHANG, "document", PDF, filename="验收报告.pdf")
    answers = await chat.say(WANG, "/files 9")
    header, *files = answers
    assert "第9项「持续扩增教育优质资源」佐证材料共 2 份" in header.plain_text
    assert "1. 验收报告.pdf（文件，" in header.plain_text and "张三" in header.plain_text
    assert [f.method for f in files] == ["sendDocument", "sendDocument"]
    assert [f.files[0].data for f in files] == [PDF, JPEG]  # newest first, as sent
    assert files[0].files[0].filename == "验收报告.pdf"
    assert "第9项佐证材料 1/2：验收报告.pdf" in (files[0].caption or "")
    assert "第10项「" in (await chat.says_one(WANG, "/files 10")) and chat.count(Evidence) == 2
    assert "您没有使用 /files 的权限" in await chat.says_one(ZHANG, "/files 9")
    assert "用法" in await chat.says_one(WANG, "/files")


async def test_evidence_is_withdrawn_with_its_report(chat: Dialog) -> None:
    await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    assert "已撤回" in await chat.says_one(ZHANG, "/undo")
    assert "佐证材料：暂无" in await chat.says_one(WANG, "/status 9")
    assert "暂无佐证材料" in await chat.says_one(WANG, "/files 9")
    assert len(evidence_rows(chat.engine)) == 1  # kept, with its withdrawn report


async def test_evidence_stays_with_a_corrected_report(chat: Dialog) -> None:
    await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    await chat.say(ZHANG, "9 70%")
    first, second = chat.reports()
    assert first.superseded_by_id == second.id
    (row,) = evidence_rows(chat.engine)
    assert row.report_id == first.id
    assert "佐证材料：1 份" in await chat.says_one(WANG, "/status 9")


async def test_evidence_survives_a_reimport(chat: Dialog) -> None:
    await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    with Session(chat.engine) as s:
        plans.import_plan(s, parse_plan_file(SAMPLE), source_file=SAMPLE.name, actor="cli")
        s.commit()
    assert "佐证材料：1 份" in await chat.says_one(WANG, "/status 9")


async def test_the_ledger_lists_and_links_the_files(chat: Dialog, tmp_path: Path) -> None:
    await send(chat, ZHANG, "photo", JPEG, caption="9 60% 见附件")
    await send(chat, ZHANG, "document", PDF, filename="验收报告.pdf")
    chat.clock.advance(timedelta(minutes=1))
    await chat.say(ZHANG, "10 30%")
    await send(chat, ZHANG, "document", docx(), filename="方案.docx")
    await chat.say(ZHANG, "/undo")  # the report on 10, and its file with it
    settings = chat.app.settings
    with Session(chat.engine) as s:
        plan = plans.current_plan(s)
        path = export_ledger(
            s,
            plan,
            tmp_path / "台账.xlsx",
            settings=settings,
            now=chat.clock(),
            evidence_dir=tmp_path / "佐证材料",
        )
    book = openpyxl.load_workbook(path)
    assert book.sheetnames[-1] == "佐证材料"
    ws = book["佐证材料"]
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert [(r[0], r[8], r[11]) for r in rows] == [
        (9, "photo.jpg", None),
        (9, "验收报告.pdf", None),
        (10, "方案.docx", "已撤回"),
    ]
    assert rows[0][3] == pytest.approx(0.6)  # the report's completion
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "佐证材料").rglob("*.*"))
    folder = "009-持续扩增教育优质资源"
    assert [str(p) for p in written] == [
        f"佐证材料/{folder}/01-photo.jpg",
        f"佐证材料/{folder}/02-验收报告.pdf",
    ]
    assert ws["I2"].hyperlink.target == f"佐证材料/{folder}/01-photo.jpg"
    assert (tmp_path / "佐证材料" / folder / "02-验收报告.pdf").read_bytes() == PDF
    assert ws["I4"].hyperlink is None  # withdrawn: not written, not linked


# --- WeCom ---------------------------------------------------------------------------------


@pytest.fixture
async def wecom(fake: FakeWeCom, db_url: str) -> AsyncIterator[WeComDialog]:
    async with running_wecom_bot(fake, db_url, evidence_max_bytes=64 * 1024) as dialog:
        dialog.app.core.messengers["wecom"].backoff = 0.01  # type: ignore[attr-defined]
        yield dialog


def media_xml(wecom: WeComDialog, user: str, kind: str, media_id: str, **fields: str) -> str:
    """A plain image/video/voice callback."""
    extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{wecom.fake.corp_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{int(time.time())}"
        f"</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId>{extra}"
        f"<MsgId>{next(wecom._msg_ids)}</MsgId><AgentID>{wecom.fake.agent_id}</AgentID></xml>"
    )


async def post(wecom: WeComDialog, xml: str, user: str = "zhangsan") -> list[Any]:
    """Post a callback and wait until it is handled; the app messages it sent to user."""
    before = len(wecom.fake.messages_to(user))
    done = len(wecom._handled)
    assert await wecom.post(xml) == 200
    await wecom.handled(done + 1)
    await asyncio.sleep(0.05)
    return list(wecom.fake.messages_to(user)[before:])


async def click(wecom: WeComDialog, card: Any, key: str, user: str = "zhangsan") -> list[Any]:
    xml = wecom.event_xml(
        user,
        "template_card_event",
        EventKey=key,
        TaskId=card.card["task_id"],
        CardType="button_interaction",
    )
    return await post(wecom, xml, user)


async def test_wecom_image_joins_the_report_of_the_last_minutes(wecom: WeComDialog) -> None:
    await wecom.say("zhangsan", "9 60% 华侨实验小学主体完工")
    media = wecom.fake.user_media(JPEG, content_type="image/jpeg")
    (answer,) = await post(wecom, media_xml(wecom, "zhangsan", "image", media, PicUrl="http://x"))
    assert "已将照片「photo.jpg」" in answer.content and "第9项" in answer.content
    (report,) = wecom.reports()
    (row,) = evidence_rows(wecom.engine)
    assert (row.report_id, row.platform, row.sha256) == (report.id, "wecom", sha(JPEG))
    assert wecom.fake.stats["media/get"] == 1


async def test_wecom_file_needing_the_item_buttons(wecom: WeComDialog) -> None:
    media = wecom.fake.user_media(PDF, filename="总结.pdf", content_type="application/pdf")
    (card,) = await post(wecom, media_xml(wecom, "zhangsan", "video", media))
    assert card.msgtype == "template_card"
    keys = [key for _, key in card.buttons]
    assert len(keys) == 3 and all(k.startswith("file:") for k in keys)
    assert evidence_rows(wecom.engine)[0].name == "总结.pdf"  # from media/get's header
    (answer,) = await click(wecom, card, keys[0])
    assert "第9项" in answer.content
    assert evidence_rows(wecom.engine)[0].item_id == 9


async def test_wecom_oversized_and_missing_media_are_refused(wecom: WeComDialog) -> None:
    big = wecom.fake.user_media(JPEG * 40, content_type="image/jpeg")
    (answer,) = await post(wecom, media_xml(wecom, "zhangsan", "image", big))
    assert "文件超过 64 KB 上限" in answer.content
    (gone,) = await post(wecom, media_xml(wecom, "zhangsan", "image", "no-such-media"))
    assert gone.content == "文件未能下载，未保存。请稍后重新发送。"
    assert evidence_rows(wecom.engine) == [] and stored_files(data_dir(wecom)) == []


async def test_wecom_failed_download_never_logs_the_token(
    wecom: WeComDialog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await wecom.say("zhangsan", "/my")  # a token is fetched
    token = wecom.fake.current_token
    assert token
    wecom.fake.http_error_next("media/get", 502)
    (answer,) = await post(
        wecom, media_xml(wecom, "zhangsan", "image", wecom.fake.user_media(JPEG))
    )
    assert answer.content == "文件未能下载，未保存。请稍后重新发送。"
    assert any("fetching a wecom file failed" in r.getMessage() for r in caplog.records)
    assert all(token not in r.getMessage() for r in caplog.records)
    assert evidence_rows(wecom.engine) == [] and stored_files(data_dir(wecom)) == []


async def test_wecom_media_token_expired_is_fetched_again(wecom: WeComDialog) -> None:
    await wecom.say("zhangsan", "9 60% 主体完工")
    wecom.fake.expire_tokens()
    media = wecom.fake.user_media(JPEG)
    (answer,) = await post(wecom, media_xml(wecom, "zhangsan", "image", media))
    assert "第9项" in answer.content and len(evidence_rows(wecom.engine)) == 1


async def test_wecom_voice_with_recognition_is_confirmed_before_recording(
    wecom: WeComDialog,
) -> None:
    xml = media_xml(
        wecom, "zhangsan", "voice", "voice-1", Format="amr", Recognition="9 60% 主体完工"
    )
    heard, card = await post(wecom, xml)
    assert heard.content == "语音识别结果：\n9 60% 主体完工"
    assert [label for label, _ in card.buttons] == ["确认", "取消"]
    assert wecom.reports() == []  # nothing before the confirmation
    answers = await click(wecom, card, card.buttons[0][1])
    assert (
        "已记录 第9项" in answers[-1].content and "🎙 以上内容来自语音识别。" in answers[-1].content
    )
    (report,) = wecom.reports()
    assert (report.percent, report.source) == (60, "voice")
    assert wecom.fake.stats["media/get"] == 0  # the voice itself is not kept
    stale = await click(wecom, card, card.buttons[0][1])
    assert "按钮已失效" in stale[0].content and len(wecom.reports()) == 1


async def test_wecom_voice_cancelled_records_nothing(wecom: WeComDialog) -> None:
    xml = media_xml(wecom, "zhangsan", "voice", "v", Format="amr", Recognition="9 90%")
    _, card = await post(wecom, xml)
    (answer,) = await click(wecom, card, card.buttons[1][1])
    assert answer.content == "好的，这条语音未作记录。"
    assert wecom.reports() == []
    with Session(wecom.engine) as s:
        assert s.exec(select(PendingVoice)).one().resolved_at is not None


async def test_wecom_voice_that_needs_the_item_is_voice_once_picked(wecom: WeComDialog) -> None:
    xml = media_xml(wecom, "zhangsan", "voice", "v", Recognition="本周召开推进会进度50%")
    _, card = await post(wecom, xml)
    (question,) = await click(wecom, card, card.buttons[0][1])
    pick = next(key for _, key in question.buttons if key.startswith("pick:"))
    answers = await click(wecom, question, pick)
    assert "已记录 第9项" in answers[-1].content
    (report,) = wecom.reports()
    assert report.source == "voice"


async def test_wecom_voice_without_recognition_cannot_be_read(wecom: WeComDialog) -> None:
    (answer,) = await post(wecom, media_xml(wecom, "zhangsan", "voice", "v", Format="amr"))
    assert answer.content.startswith("收到一条语音，但无法识别其中的文字，未作记录。")
    assert wecom.reports() == [] and wecom.fake.stats["media/get"] == 0


async def test_wecom_files_for_a_leader(wecom: WeComDialog) -> None:
    await wecom.say("zhangsan", "9 60% 主体完工")
    media = wecom.fake.user_media(PDF, filename="验收报告.pdf", content_type="application/pdf")
    await post(wecom, media_xml(wecom, "zhangsan", "image", media))
    answers = await wecom.say("wangju", "/files 9")
    assert "佐证材料共 1 份" in answers[0].content
    assert answers[-1].msgtype == "file"
    (upload,) = wecom.fake.uploads
    assert upload.data == PDF and upload.filename == "验收报告.pdf"


# --- the checks themselves -----------------------------------------------------------------


def test_types_are_told_by_content(tmp_path: Path) -> None:
    cases = {
        "a.jpg": (JPEG, "jpg"),
        "a.pdf": (PDF, "pdf"),
        "a.mp4": (MP4, "mp4"),
        "a.docx": (docx(), "docx"),
        "a.xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "Workbook".encode("utf-16-le"), "xls"),
        "a.ole": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, None),
        "a.exe": (EXE, None),
        "a.txt": ("进度60%".encode(), None),
    }
    for name, (content, ext) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        found = sniff(path, content[:4096])
        assert (found.ext if found else None) == ext, name
    zipped = tmp_path / "plain.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "x")
    assert sniff(zipped, zipped.read_bytes()[:4096]) is None  # a zip is no Office file


def test_what_the_sender_declared_must_agree_with_the_content() -> None:
    pdf = TYPES["pdf"]
    check_declared(pdf, "报告.pdf", "application/pdf")
    check_declared(pdf, "", "application/octet-stream")  # saying nothing is fine
    check_declared(TYPES["jpg"], "IMG_1.JPEG", "image/png")  # a picture is a picture
    for name, mime in [("报告.docx", ""), ("x.exe", ""), ("报告.pdf", "text/html")]:
        with pytest.raises(FileRefused):
            check_declared(pdf, name, mime)


def test_names_are_display_text_and_safe_when_written_out() -> None:
    jpg = TYPES["jpg"]
    assert display_name("../../etc/passwd", jpg, "photo") == "passwd.jpg"
    assert display_name("C:\\Users\\a\\现场 照片.jpeg", jpg, "photo") == "现场 照片.jpg"
    assert display_name("\x00\u202e.jpg", jpg, "photo") == "photo.jpg"
    assert display_name("..", jpg, "photo") == "photo.jpg"
    assert file_name("现场 照片.jpg") == "现场_照片.jpg"
    assert file_name("con.jpg") == "con.jpg" and "/" not in file_name("a/../../b.pdf")
    assert type_names("JPEG, application/pdf,.docx") == frozenset({"jpg", "pdf", "docx"})
    with pytest.raises(ValueError, match="unknown file type"):
        type_names("pdf,exe")


def test_the_writer_stops_at_the_cap(tmp_path: Path) -> None:
    writer = CappedWriter(tmp_path / "part", 10)
    writer.write(b"12345")
    with pytest.raises(FileTooBig):
        writer.write(b"123456")
    writer.discard()
    assert list(tmp_path.iterdir()) == []


async def test_a_stored_file_no_row_takes_is_pruned(tmp_path: Path, engine: Any) -> None:
    store = EvidenceStore(tmp_path / "evidence", max_bytes=1 << 20, allowed={"pdf"})

    class Source:
        platform = "test"

        async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
            sink.write(PDF)
            return Fetched(mime="application/pdf")

    from bot.events import IncomingMessage

    event = IncomingMessage(
        "test", "1", "1", "u1", attachment=Attachment("document", "f1", name="a.pdf")
    )
    received = await store.receive(Source(), event)
    assert received.attachment and received.attachment.stored is not None
    path = store.path_of(sha(PDF))
    assert path.read_bytes() == PDF
    assert store.prune(engine) == []  # still in hand
    store.handled(sha(PDF))
    assert store.prune(engine) == [sha(PDF)] and not path.exists()


def test_settings_of_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.settings import Settings

    monkeypatch.delenv("DATA_DIR", raising=False)
    beside = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/db/duban.db")  # type: ignore[call-arg]
    assert beside.data_dir == tmp_path / "db" / "duban-data"
    assert beside.evidence_max_bytes == 20 * 1024 * 1024
    assert type_names(beside.evidence_types) >= {"pdf", "docx", "xlsx", "jpg", "mp4"}
    given = Settings(_env_file=None, data_dir=tmp_path / "d", evidence_types="jpeg,PDF")  # type: ignore[call-arg]
    assert given.data_dir == tmp_path / "d" and given.evidence_types == "jpg,pdf"
    with pytest.raises(ValidationError, match="unknown file type"):
        Settings(_env_file=None, evidence_types="pdf,exe")  # type: ignore[call-arg]
