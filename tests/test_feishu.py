"""The Feishu channel against the fake Feishu over real HTTP and a real websocket: events in
through the official SDK's long connection (stored before they are acknowledged, handled once,
in order), messages, cards, replies, files and the group bot out."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot import inbox
from bot.channels import registry
from bot.channels.feishu import SPEC, account
from bot.channels.feishu import group as feishu_group
from bot.channels.feishu.api import (
    MAX_WIRE,
    FeishuApi,
    FeishuApiError,
    FeishuMessenger,
    wire_size,
)
from bot.channels.feishu.channel import FeishuChannel
from bot.channels.feishu.events import EventRefused, to_event
from bot.channels.feishu.group import FeishuGroupBot, GroupBotError
from bot.events import Attachment, Button, EventKind, IncomingMessage
from bot.evidence import FetchFailed, FileTooBig
from bot.models import Report
from tests.channels.driver import START
from tests.channels.driver_feishu import ACCOUNTS, FeishuDriver, feishu_settings, running
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, Ack, FakeFeishu

ZHANG = ACCOUNTS["张三"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def feishu() -> Iterator[FakeFeishu]:
    """A fake Feishu of this test's own."""
    with FakeFeishu(client_config=FAST_CLIENT_CONFIG) as fake:
        yield fake
        assert fake.internal_errors == [], fake.internal_errors


@pytest.fixture
async def messenger(feishu: FakeFeishu) -> AsyncIterator[FeishuMessenger]:
    """A messenger on the fake, with short backoffs."""
    api = FeishuApi(feishu.url, feishu.app_id, feishu.app_secret, backoff=0.01)
    yield FeishuMessenger(api)
    await api.aclose()


@pytest.fixture
async def bot(db_url: str) -> AsyncIterator[FeishuDriver]:
    """Duban on Feishu only, the cast seeded with open_ids."""
    async with running(db_url, start=START) as driver:
        yield driver


def _inbox_rows(engine: sa.engine.Engine, key: str) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM inbox WHERE platform = 'feishu' AND update_key = :k")
        return int(conn.execute(query, {"k": key}).scalar_one())


# --- the spec ---------------------------------------------------------------------------------


def test_the_spec_names_the_channel_and_imports_nothing_heavy() -> None:
    assert registry.spec_of("feishu") is SPEC
    assert SPEC.markup == "markdown" and SPEC.start == "stream" and SPEC.admin_binds
    assert account(" ou_7d8a6e6df7621556ce0d21922b676706 ") == "ou_7d8a6e6df7621556ce0d21922b676706"
    for wrong in ("", "zhangsan", "ou_ x", "on_123", "ou_" + "a" * 62, "7d8a6e6d"):
        assert account(wrong) is None, wrong
    code = (
        "import sys, bot.channels.feishu as f; "
        "heavy = [m for m in ('lark_oapi', 'httpx', 'aiohttp', 'websockets') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_group_bot_is_there_only_with_its_token(feishu: FakeFeishu) -> None:
    settings = feishu_settings(feishu, "sqlite://", feishu_group_webhook_token=None)
    assert feishu_group(settings) is None
    assert isinstance(feishu_group(feishu_settings(feishu, "sqlite://")), FeishuGroupBot)


# --- reading events ----------------------------------------------------------------------------


def _message(feishu: FakeFeishu, kind: str, content: dict[str, Any], **options: Any) -> str:
    _, _, payload = feishu.message_event(ZHANG, kind, content, **options)
    return json.dumps(payload, ensure_ascii=False)


def test_events_are_read_as_feishu_sends_them(feishu: FakeFeishu) -> None:
    text = to_event(_message(feishu, "text", {"text": "@_user_1  9 60%  主体完工"}))
    assert text is not None and text.kind == EventKind.text
    assert text.text == "9 60% 主体完工" and text.chat_id == text.sender_id == ZHANG
    assert text.update_id == text.message_id and text.update_id.startswith("om_")
    reply = to_event(_message(feishu, "text", {"text": "60%"}, parent_id="om_parent1"))
    assert reply is not None and reply.reply_to_message_id == "om_parent1"
    post = {
        "title": "进展",
        "content": [[{"tag": "text", "text": "9 "}, {"tag": "a", "text": "60%"}]],
    }
    rich = to_event(_message(feishu, "post", post))
    assert rich is not None and rich.text == "进展\n9 60%"
    image = to_event(_message(feishu, "image", {"image_key": "img_v3_abc"}))
    assert image is not None and image.kind == EventKind.file and image.attachment is not None
    assert image.attachment.kind == "photo"
    assert image.attachment.file_id == f"{image.message_id}/img_v3_abc"
    document = to_event(_message(feishu, "file", {"file_key": "file_v3_x", "file_name": "a.pdf"}))
    assert document is not None and document.attachment is not None
    assert (document.attachment.kind, document.attachment.name) == ("document", "a.pdf")
    voice = to_event(_message(feishu, "audio", {"file_key": "file_v3_y", "duration": 2000}))
    assert voice is not None and voice.kind == EventKind.voice
    sticker = to_event(_message(feishu, "sticker", {"file_key": "x"}))
    assert sticker is not None and sticker.kind == EventKind.unsupported
    assert to_event(_message(feishu, "text", {"text": "hi"}, chat_type="group")) is None


def test_unreadable_events_are_refused_with_a_reason(feishu: FakeFeishu) -> None:
    good = json.loads(_message(feishu, "text", {"text": "hi"}))
    cases = {
        "payload is not JSON": "{oops",
        "not a schema 2.0 event": json.dumps({"uuid": "1", "event": {}}),
        "malformed open_id": json.dumps(
            {**good, "event": {**good["event"], "sender": {"sender_id": {"open_id": 7}}}}
        ),
        "message content is not JSON": json.dumps(
            {
                **good,
                "event": {**good["event"], "message": {**good["event"]["message"], "content": "{"}},
            }
        ),
    }
    for reason, payload in cases.items():
        with pytest.raises(EventRefused) as refused:
            to_event(payload)
        assert refused.value.reason == reason
    other = {**good, "header": {**good["header"], "event_type": "im.message.message_read_v1"}}
    assert to_event(json.dumps(other)) is None


# --- the long connection, end to end -----------------------------------------------------------


async def test_a_message_is_stored_before_its_ack_and_answered(bot: FeishuDriver) -> None:
    seen: list[tuple[str, int]] = []

    def on_ack(ack: Ack) -> None:  # in the fake's thread, as the frame arrives
        pushed = next(p for p in bot.fake.pushed if p.frame_id == ack.frame_id)
        seen.append((ack.frame_id, _inbox_rows(bot.engine, pushed.message_id or "")))

    bot.fake.on_ack.append(on_ack)
    said = await bot.say("张三", "9 60% 华侨实验小学主体完工")
    assert len(seen) == 1 and seen[0][1] == 1  # stored when the ack left
    assert bot.fake.acks[seen[0][0]].code == 200
    assert "已记录" in said[0].text and "60%" in said[0].text


async def test_a_redelivered_event_is_handled_once(bot: FeishuDriver) -> None:
    said = await bot.say("张三", "9 70% 主体完工")
    assert "已记录" in said[0].text
    assert await bot.redeliver("张三") == []
    with Session(bot.engine) as session:
        assert len(session.exec(select(Report)).all()) == 1
    assert _inbox_rows(bot.engine, bot._last["张三"].message_id or "") == 1


async def test_card_buttons_round_trip(bot: FeishuDriver) -> None:
    (ask,) = await bot.say("张三", "60% 主体完工")
    assert ask.raw.msg_type == "interactive" and ask.raw.card["schema"] == "2.0"
    assert [data for _, data in ask.choices][:2] == ["pick:1:9", "pick:1:10"]
    said = await bot.click("张三", ask, "pick:1:9")
    assert "已记录" in said[0].text and "第9项" in said[0].text
    click = bot._last["张三"]
    assert bot.fake.acks[click.frame_id].code == 200 and click.message_id is None


async def test_the_digest_is_a_markdown_card_with_its_chart(bot: FeishuDriver) -> None:
    said = await bot.say("王局", "/digest")
    card = said[0].raw
    assert card.msg_type == "interactive" and card.markdown
    assert card.card["body"]["elements"][0]["content"].startswith("### ")
    assert any(s.raw.msg_type == "image" for s in said)
    assert [u.kind for u in bot.fake.uploads] == ["image"]


async def test_a_reply_to_a_message_reports_on_its_item(bot: FeishuDriver) -> None:
    (status,) = await bot.say("张三", "/status 10")
    assert "10" in status.text
    before = len(bot.fake.messages_to(ZHANG))
    pushed = await asyncio.to_thread(
        bot.fake.user_says, ZHANG, "35% 场地已落实", parent_id=status.raw.message_id
    )
    await bot._wait_handled({pushed.message_id or ""})
    (answer,) = bot.fake.messages_to(ZHANG)[before:]
    assert "已记录" in (answer.text or "") and "第10项" in (answer.text or "")


async def test_a_persons_events_are_handled_in_the_order_they_came(bot: FeishuDriver) -> None:
    order: list[str] = []
    bot.app.core.observers.append(lambda event: order.append(event.update_id))
    pushed = [
        await asyncio.to_thread(bot.fake.user_says, ZHANG, f"9 {percent}% 第{percent}次")
        for percent in (10, 20, 30, 40, 50)
    ]
    await bot._wait_handled(p.message_id or "" for p in pushed)
    assert order == [p.message_id for p in pushed]
    with Session(bot.engine) as session:
        latest = session.exec(select(Report).order_by(col(Report.id).desc())).first()
    assert latest is not None and latest.percent == 50


async def test_a_burst_is_stored_in_a_few_transactions(bot: FeishuDriver) -> None:
    batches: list[int] = []
    original = bot.app.core.store

    async def slow_store(platform: str, received: Any) -> list[bool]:
        batches.append(len(received))
        await asyncio.sleep(0.2)  # events keep coming meanwhile
        return await original(platform, received)

    bot.app.core.store = slow_store  # type: ignore[method-assign]
    try:
        pushed = [
            await asyncio.to_thread(bot.fake.user_says, ACCOUNTS[name], f"{item} {p}% 推进中")
            for p in (10, 20, 30, 40)
            for name, item in (("张三", 9), ("李四", 22))
        ]
        await bot._wait_handled(p.message_id or "" for p in pushed)
    finally:
        bot.app.core.store = original  # type: ignore[method-assign]
    assert sum(batches) == len(pushed) == 8
    assert len(batches) < len(pushed) and max(batches) > 1  # was one transaction each
    with Session(bot.engine) as session:
        stored = session.exec(select(Report).order_by(col(Report.id))).all()
    by_person: dict[int, list[int | None]] = {}
    for report in stored:  # each person's in the order they came (people run side by side)
        by_person.setdefault(report.contact_id, []).append(report.percent)
    assert sorted(by_person.values()) == [[10, 20, 30, 40], [10, 20, 30, 40]]
    assert all(bot.fake.acks[p.frame_id].code == 200 for p in pushed)


async def test_malformed_frames_get_one_line_and_nothing_is_stored(
    bot: FeishuDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    good = json.loads(bot.received("张三", "hi").payload)
    bad_user = {**good, "event": {**good["event"], "sender": {"sender_id": {"open_id": "x"}}}}
    pushed = []
    for _ in range(3):
        pushed.append(await asyncio.to_thread(bot.fake.push_event, b"{not json"))
        pushed.append(await asyncio.to_thread(bot.fake.push_event, bad_user))
        await asyncio.to_thread(bot.fake.push_raw, b"\x00\xffgarbage")
    acks = [await bot.fake.await_ack(p.frame_id) for p in pushed]
    assert {ack.code for ack in acks} == {400}
    said = await bot.say("张三", "/my")  # the connection still works
    assert "您负责的事项" in said[0].text
    lines = [r for r in caplog.records if r.name.startswith("bot.channels.feishu")]
    reasons = sorted(r.getMessage() for r in lines)
    assert len(reasons) == 3, reasons  # one line per kind, the repeats held back
    assert any("payload is not JSON" in r for r in reasons)
    assert any("malformed open_id" in r for r in reasons)
    assert any("unreadable frame" in r for r in reasons)
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in lines)
    with bot.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM inbox WHERE platform='feishu'"))
        assert stored.scalar_one() == 1  # the /my above


async def test_stored_but_unhandled_events_are_handled_after_a_restart(bot: FeishuDriver) -> None:
    received = bot.received("张三", "9 80% 封顶")
    inbox.store(bot.engine, "feishu", [received], datetime.now(UTC))
    await bot.restart()  # waits until the inbox's pending events were handled
    assert "80%" in (bot.sent_to("张三")[-1].text)
    assert inbox.pending(bot.engine, "feishu") == []


async def test_the_long_connection_comes_back_after_a_drop(bot: FeishuDriver) -> None:
    await asyncio.to_thread(bot.fake.wait_until, lambda f: f.pongs >= 1, 5.0)  # pinged at once
    made = bot.fake.connections_made
    await asyncio.to_thread(bot.fake.drop_connections)
    await asyncio.to_thread(bot.fake.wait_connected, made + 1, 10.0)
    said = await bot.say("张三", "/my")
    assert "您负责的事项" in said[0].text


async def test_a_file_someone_sends_is_fetched_as_evidence(bot: FeishuDriver) -> None:
    user = ACCOUNTS["张三"]
    pushed = await asyncio.to_thread(
        bot.fake.user_sends_file, user, PDF, "验收.pdf", "application/pdf"
    )
    await bot._wait_handled({pushed.message_id or ""})
    assert bot.fake.stats["resources"] == 1
    (answer,) = bot.fake.messages_to(user)[-1:]
    assert answer.buttons and all(data.startswith("file:") for _, data in answer.buttons)


async def test_stop_is_prompt_and_closes_the_connection(bot: FeishuDriver) -> None:
    started = time.monotonic()
    await bot.app.stop()
    assert time.monotonic() - started < 5
    await asyncio.to_thread(bot.fake.wait_until, lambda f: not f.connected, 5.0)
    bot.app = bot._new_app()  # for the driver's own stop at the end
    await bot._start()


async def test_a_refused_app_secret_is_one_line_and_start_goes_on(
    feishu: FakeFeishu, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = feishu_settings(feishu, "sqlite://", feishu_app_secret="not-the-app-secret")
    channel = FeishuChannel(settings, _NoInbox(), connect_wait=1.5)  # type: ignore[arg-type]
    started = time.monotonic()
    await channel.start()
    assert time.monotonic() - started < 5 and feishu.connections_made == 0
    await asyncio.sleep(1.5)  # it keeps trying, quietly
    await channel.stop()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.channels")]
    assert sum("connecting failed (ClientException 514)" in line for line in lines) == 1
    assert "not-the-app-secret" not in caplog.text
    assert feishu.stats["ws_endpoint"] >= 2


class _NoInbox:
    """A core with nothing pending (the channel never gets an event here)."""

    def pending(self, platform: str) -> list[object]:
        return []


async def test_no_secret_reaches_the_logs_at_debug(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(db_url, start=START) as bot:
        (ask,) = await bot.say("张三", "60% 主体完工")
        await bot.click("张三", ask, "pick:1:9")
        bot.fake.expire_tokens()
        await bot.say("王局", "/digest")
        robot = feishu_group(bot.settings)
        assert robot is not None
        await robot.send_markdown("**周报** 测试")
        secrets = [
            bot.fake.app_secret,
            bot.fake.group_token,
            bot.fake.group_secret,
            *bot.fake.tokens_issued,
        ]
    assert len(bot.fake.tokens_issued) == 2  # fetched again when revoked
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert any(r.name.startswith(("Lark", "httpx")) for r in caplog.records)
    for secret in secrets:
        assert secret and secret not in logged


# --- the messenger -------------------------------------------------------------------------------


async def test_text_markdown_and_buttons(messenger: FeishuMessenger, feishu: FakeFeishu) -> None:
    await messenger.send_text(ZHANG, "plain *text*")
    await messenger.send_text(ZHANG, "**bold**", markup="markdown")
    buttons = ((Button("是", "yes:1"), Button("否", "no:1")),)
    await messenger.send_text(ZHANG, "which *one*?", buttons=buttons)
    text, card, choice = feishu.messages_to(ZHANG)
    assert (text.msg_type, text.text) == ("text", "plain *text*")
    assert card.markdown and card.text == "**bold**"
    assert not choice.markdown and choice.text == "which *one*?"  # plain text, not markdown
    assert choice.buttons == [("是", "yes:1"), ("否", "no:1")]


async def test_long_text_is_split_within_feishus_limits(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    lines = [f'第{i}行 "引号" 与反斜杠 \\ 以及更多的文字，直到这一行足够长。' for i in range(600)]
    text = "\n".join(lines)
    assert wire_size(text) > 3 * MAX_WIRE
    await messenger.send_text(ZHANG, text)
    await messenger.send_text(ZHANG, text, markup="markdown")
    sent = feishu.messages_to(ZHANG)
    plain = [m for m in sent if m.msg_type == "text"]
    cards = [m for m in sent if m.msg_type == "interactive"]
    assert len(plain) >= 4 and len(cards) >= 4
    assert "\n".join(m.text or "" for m in plain) == text
    assert "\n".join(m.text or "" for m in cards) == text
    bodies = [len(json.dumps(m.raw, ensure_ascii=False).encode()) for m in cards]
    assert max(bodies) <= 30 * 1024


async def test_replies_and_a_reply_to_a_recalled_message(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    _, parent, _ = feishu.message_event(ZHANG, "text", {"text": "9 60%"})
    sent = await messenger.send_text(ZHANG, "已记录", reply_to=parent)
    assert feishu.sent[-1].reply_to == parent and sent.message_id == feishu.sent[-1].message_id
    feishu.recall(parent)
    await messenger.send_text(ZHANG, "again", reply_to=parent)
    assert feishu.sent[-1].reply_to is None and feishu.sent[-1].receive_id == ZHANG
    assert feishu.stats["230011"] == 1


async def test_rate_limits_are_retried_and_each_part_sent_once(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    feishu.fail_next("messages", 99991400)  # HTTP 429, x-ogw-ratelimit-reset: 1
    feishu.fail_next("messages", 230020)
    feishu.http_error_next("messages", 502)
    started = time.monotonic()
    await messenger.send_text(ZHANG, "稍后送达")
    assert time.monotonic() - started >= 1.0  # held back as Feishu said
    assert [m.text for m in feishu.messages_to(ZHANG)] == ["稍后送达"]
    assert (feishu.stats["99991400"], feishu.stats["230020"], feishu.stats["http:502"]) == (1, 1, 1)
    calls = [c for c in feishu.requests if c.path == "messages" and c.body is not None]
    uuids = {call.body["uuid"] for call in calls}
    assert len(calls) == 3
    assert len(uuids) == 1  # the same message each time: Feishu sends it once


async def test_a_limit_that_does_not_lift_is_an_error_without_secrets(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    feishu.fail_next("messages", 230020, count=10)
    with pytest.raises(FeishuApiError) as failed:
        await messenger.send_text(ZHANG, "x")
    assert failed.value.code == 230020 and "230020" in str(failed.value)
    for secret in (feishu.app_secret, *feishu.tokens_issued):
        assert secret not in str(failed.value)


async def test_the_token_is_cached_and_fetched_again_when_revoked(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    for n in range(3):
        await messenger.send_text(ZHANG, f"m{n}")
    assert feishu.stats["tenant_access_token"] == 1
    feishu.expire_tokens()
    await messenger.send_text(ZHANG, "after")
    assert len(feishu.tokens_issued) == 2 and feishu.stats["99991663"] == 1


async def test_files_and_pictures_are_uploaded_and_sent(
    messenger: FeishuMessenger, feishu: FakeFeishu, tmp_path: Path
) -> None:
    ledger = tmp_path / "台账.xlsx"
    ledger.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    await messenger.send_file(ZHANG, ledger, caption="本周台账")
    await messenger.send_photo(ZHANG, chart)
    caption, file, picture = feishu.messages_to(ZHANG)
    assert caption.text == "本周台账"
    assert file.msg_type == "file" and picture.msg_type == "image"
    assert [(u.kind, u.file_type, u.name) for u in feishu.uploads] == [
        ("file", "xls", "台账.xlsx"),
        ("image", "image", "chart.png"),
    ]


class _Sink:
    def __init__(self, limit: int) -> None:
        self.limit, self.data = limit, b""

    def write(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.limit:
            raise FileTooBig(f"over {self.limit} bytes")
        self.data += chunk


async def test_files_people_send_are_streamed_under_a_cap(
    messenger: FeishuMessenger, feishu: FakeFeishu
) -> None:
    big = b"%PDF-" + b"x" * 300_000
    _, message_id, key, _ = feishu.user_resource(
        ZHANG, big, name="验收.pdf", content_type="application/pdf"
    )
    attachment = Attachment("document", f"{message_id}/{key}", name="验收.pdf")
    sink = _Sink(1 << 20)
    fetched = await messenger.fetch_file(attachment, sink)
    assert sink.data == big and fetched.name == "验收.pdf" and fetched.mime == "application/pdf"
    with pytest.raises(FileTooBig):
        await messenger.fetch_file(attachment, _Sink(100_000))
    with pytest.raises(FetchFailed, match="code 234003"):
        await messenger.fetch_file(Attachment("photo", f"{message_id}/{key}"), _Sink(1 << 20))
    feishu.expire_tokens()  # a revoked token is fetched again for a download too
    assert (await messenger.fetch_file(attachment, _Sink(1 << 20))).name == "验收.pdf"


# --- the group bot -------------------------------------------------------------------------------


async def test_the_group_bot_signs_and_splits_long_digests(feishu: FakeFeishu) -> None:
    robot = FeishuGroupBot(feishu.url, feishu.group_token, feishu.group_secret, backoff=0.01)
    digest = "\n".join(f"**{i}.** 事项进展 " + "说明" * 40 for i in range(250))
    parts = await robot.send_markdown(digest)
    messages = feishu.group_messages
    assert parts == len(messages) >= 2
    assert "\n".join(m.text for m in messages) == digest
    assert all(m.raw["timestamp"] and m.raw["sign"] for m in messages)
    assert all(m.msg_type == "interactive" for m in messages)


async def test_the_group_bot_is_refused_with_a_wrong_signature(feishu: FakeFeishu) -> None:
    wrong = FeishuGroupBot(feishu.url, feishu.group_token, "another-secret-123", backoff=0.01)
    with pytest.raises(GroupBotError) as refused:
        await wrong.send_markdown("x")
    assert "19021" in str(refused.value)
    assert feishu.group_token not in str(refused.value)
    stale = FeishuGroupBot(
        feishu.url,
        feishu.group_token,
        feishu.group_secret,
        wall_clock=lambda: time.time() - 2 * 3600,
    )
    with pytest.raises(GroupBotError, match="19021"):
        await stale.send_markdown("x")
    assert feishu.group_messages == []


async def test_the_group_bot_keeps_to_five_a_second(feishu: FakeFeishu) -> None:
    robot = FeishuGroupBot(feishu.url, feishu.group_token, feishu.group_secret, backoff=0.01)
    started = time.monotonic()
    for n in range(7):
        await robot.send_markdown(f"第{n}条")
    assert time.monotonic() - started >= 1.0
    assert len(feishu.group_messages) == 7 and feishu.stats["11232"] == 0


def test_opening_the_chat_is_an_enter_event() -> None:
    payload = {
        "schema": "2.0",
        "header": {"event_id": "e1", "event_type": "im.chat.access_event.bot_p2p_chat_entered_v1"},
        "event": {"operator_id": {"open_id": ZHANG}},
    }
    event = to_event(json.dumps(payload))
    assert event == IncomingMessage("feishu", ZHANG, ZHANG, "e1", kind=EventKind.enter)
