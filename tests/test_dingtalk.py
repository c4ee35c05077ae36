"""The DingTalk channel against the fake DingTalk over real HTTP and a real websocket: frames
stored before they are acked and handled once, cards and clicks, markdown, splitting, tokens,
rate limits, refusals, restarts, files, the group robot, and no secret in the logs."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot import db, inbox
from bot.channels.dingtalk.api import DingTalkApi, DingTalkError, WindowPacer
from bot.channels.dingtalk.channel import (
    MAX_TEXT,
    DingTalkMessenger,
    decode_button,
    encode_button,
    message_event,
    to_event,
)
from bot.channels.dingtalk.group import MAX_MARKDOWN_BYTES, GroupRobot, GroupRobotError
from bot.channels.dingtalk.stream import FrameRefused
from bot.events import Attachment, EventKind
from bot.evidence import CappedWriter, FetchFailed, FileTooBig
from bot.models import InboxEntry, Report
from tests.channels.driver import START
from tests.channels.driver_dingtalk import ACCOUNTS, DingTalkDriver, running
from tests.fakes.dingtalk_api import FakeDingTalk

ZHANG = ACCOUNTS["张三"]


def _fast(driver: DingTalkDriver) -> DingTalkMessenger:
    messenger = driver.app.core.messengers["dingtalk"]
    assert isinstance(messenger, DingTalkMessenger)
    messenger.api.backoff = 0.01
    return messenger


@pytest.fixture
async def dt(db_url: str) -> AsyncIterator[DingTalkDriver]:
    async with running(db_url, start=START) as driver:
        _fast(driver)
        yield driver


@pytest.fixture(scope="module")
def _shared_fake() -> Iterator[FakeDingTalk]:
    with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
def dtfake(_shared_fake: FakeDingTalk) -> Iterator[FakeDingTalk]:
    _shared_fake.reset(keep_tokens=False)
    _shared_fake.clear_faults()
    yield _shared_fake
    assert _shared_fake.internal_errors == []


@pytest.fixture
async def messenger(dtfake: FakeDingTalk) -> AsyncIterator[DingTalkMessenger]:
    api = DingTalkApi(
        dtfake.client_id,
        dtfake.client_secret,
        dtfake.robot_code,
        api_base=dtfake.url,
        oapi_base=dtfake.url,
        backoff=0.01,
    )
    yield DingTalkMessenger(api)
    await api.close()


def _reports(driver: DingTalkDriver) -> list[Report]:
    with Session(driver.engine) as session:
        return list(session.exec(select(Report).order_by(col(Report.id))))


def _inbox(driver: DingTalkDriver) -> list[InboxEntry]:
    with Session(driver.engine) as session:
        return list(session.exec(select(InboxEntry)))


# --- receiving ---------------------------------------------------------------------------


async def test_a_message_is_stored_before_its_ack_and_handled_once(
    dt: DingTalkDriver, db_url: str
) -> None:
    seen_at_ack: list[int] = []
    other = db.make_engine(db_url)
    msg_id = "msgStoredBeforeAck01"

    def on_ack(ack: object) -> None:  # runs in the fake's thread as the ack arrives
        with other.connect() as conn:
            query = sa.select(sa.func.count()).where(col(InboxEntry.update_key) == f"msg:{msg_id}")
            seen_at_ack.append(int(conn.execute(query.select_from(InboxEntry)).scalar_one()))

    dt.fake.on_ack = on_ack
    try:
        pushed = dt.fake.user_says(ZHANG, "9 60% 华侨实验小学主体完工", msg_id=msg_id)
        first = await dt.fake.await_ack(pushed.message_id)
        await dt._wait_handled({f"msg:{msg_id}"})
        dt.fake.redeliver(pushed.message_id)  # DingTalk's redelivery: the same frame
        second = await dt.fake.await_ack(pushed.message_id, 2)
        await dt._wait_quiet()
    finally:
        dt.fake.on_ack = None
        other.dispose()
    assert seen_at_ack == [1, 1]  # the row was there when each ack was sent
    assert first.code == 200 and second.code == 200
    (reply,) = dt.fake.messages_to(ZHANG)
    assert reply.kind == "text" and "已记录 第9项" in (reply.text or "")
    assert [r.percent for r in _reports(dt)] == [60]
    (entry,) = _inbox(dt)
    assert entry.handled_at is not None and entry.chat_key == ZHANG
    assert dt.fake.stats["robot/oToMessages/batchSend"] == 1


async def test_a_card_click_comes_back_as_its_button(dt: DingTalkDriver) -> None:
    (question,) = await dt.say("张三", "60% 主体完工")  # two items: which one?
    assert question.raw.kind == "card" and question.raw.raw["cardTemplateId"] == "StandardCard"
    assert ("9. 持续扩增教育优质资源", "pick:1:9") in question.choices
    card = question.raw.param
    buttons = [a for part in card["contents"] if part["type"] == "action" for a in part["actions"]]
    assert {b["actionType"] for b in buttons} == {"request"}
    (answer,) = await dt.click("张三", question, "pick:1:9")
    assert "已记录 第9项" in answer.text
    assert [(r.percent, r.item_id is not None) for r in _reports(dt)] == [(60, True)]


async def test_events_of_one_person_are_handled_in_the_order_they_came(
    dt: DingTalkDriver,
) -> None:
    order: list[str] = []
    dt.app.core.observers.append(lambda event: order.append(event.text))
    texts = [f"/my {n}" for n in range(8)]
    pushed = [dt.fake.user_says(ZHANG, text) for text in texts]
    for p in pushed:
        await dt.fake.await_ack(p.message_id)
    await dt._wait_handled({f"msg:{p.msg_id}" for p in pushed})
    assert order == texts


async def test_unreadable_frames_are_refused_in_one_line_and_nothing_is_stored(
    dt: DingTalkDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = dt.fake
    fake.push_raw("{this is not json")
    bad_data = fake.robot_frame(ZHANG, "x")
    bad_data["data"] = "not json either"
    no_sender = fake.robot_frame(ZHANG, "9 60% 不该被记录")
    data = json.loads(no_sender["data"])
    del data["senderStaffId"]
    no_sender["data"] = json.dumps(data)
    foreign_card = fake.card_frame(ZHANG, "some-card", "button_1646816888257")
    pushed = [fake.push(frame) for frame in (bad_data, no_sender, foreign_card)]
    acks = [await fake.await_ack(p.message_id) for p in pushed]
    assert [a.code for a in acks] == [400, 400, 400]
    await dt._wait_quiet()
    assert _inbox(dt) == [] and _reports(dt) == [] and fake.messages_to(ZHANG) == []
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in refusals)
    assert all("不该被记录" not in r.getMessage() for r in caplog.records)
    # the connection is still good
    assert "已记录 第9项" in (await dt.say("张三", "9 60%"))[0].text


async def test_group_messages_are_acked_and_left_alone(dt: DingTalkDriver) -> None:
    pushed = dt.fake.group_says(ZHANG, "9 60%")
    assert (await dt.fake.await_ack(pushed.message_id)).code == 200
    await dt._wait_quiet()
    assert _inbox(dt) == [] and dt.fake.messages_to(ZHANG) == []


async def test_stored_but_unhandled_messages_are_handled_after_a_restart(
    dt: DingTalkDriver,
) -> None:
    await dt.app.stop()
    dt.app = dt._new_app()  # stored with the new app's engine: the old one is disposed
    received = dt.received("张三", "9 70% 主体封顶")
    assert inbox.store(dt.engine, "dingtalk", [received], START) == [True]
    _fast(dt)
    await dt._start()  # waits until the stored message was handled
    (reply,) = dt.fake.messages_to(ZHANG)
    assert "已记录 第9项" in (reply.text or "")
    assert [r.percent for r in _reports(dt)] == [70]


async def test_a_disconnect_makes_the_client_connect_anew(dt: DingTalkDriver) -> None:
    made = dt.fake.connections_made
    dt.fake.disconnect()
    await dt.fake.await_connected(made + 1)
    assert "已记录 第9项" in (await dt.say("张三", "9 65%"))[0].text


async def test_a_ping_is_answered_with_its_data(dt: DingTalkDriver) -> None:
    pushed = dt.fake.ping()
    ack = await dt.fake.await_ack(pushed.message_id)
    assert ack.code == 200 and json.loads(ack.data) == json.loads(pushed.frame["data"])


async def test_a_picture_is_fetched_and_kept_as_evidence(dt: DingTalkDriver) -> None:
    await dt.say("张三", "9 60% 主体完工")
    code = dt.fake.user_file(b"\xff\xd8\xff\xe0" + bytes(4000), "site.jpg", "image/jpeg")
    pushed = dt.fake.user_sends(ZHANG, "picture", {"downloadCode": code})
    await dt.fake.await_ack(pushed.message_id)
    await dt._wait_handled({f"msg:{pushed.msg_id}"})
    assert "佐证材料" in (dt.fake.messages_to(ZHANG)[-1].text or "")
    assert dt.fake.stats["download"] == 1


async def test_a_voice_message_is_a_voice_event_with_the_recognition(
    dt: DingTalkDriver,
) -> None:
    content = {"duration": 3000, "downloadCode": "dlc001", "recognition": "第9项完成百分之七十"}
    frame = dt.fake.robot_frame(ZHANG, msgtype="audio", content=content)
    from dingtalk_stream import CallbackMessage

    event = message_event(CallbackMessage.from_dict(frame))
    assert event is not None and event.kind == EventKind.voice
    assert event.text == "第9项完成百分之七十"
    pushed = dt.fake.push(frame)
    await dt.fake.await_ack(pushed.message_id)
    await dt._wait_handled({f"msg:{pushed.msg_id}"})
    heard, card = dt.fake.messages_to(ZHANG)
    assert "第9项完成百分之七十" in (heard.text or "")
    assert card.kind == "card" and [label for label, _ in card.buttons] == ["确认", "取消"]


def test_frames_become_the_cores_events() -> None:
    fake = FakeDingTalk()  # only its frame builders: not started
    file_frame = fake.robot_frame(
        ZHANG, msgtype="file", content={"downloadCode": "abc+/=", "fileName": "台账.xlsx"}
    )
    event = to_event(json.dumps(file_frame))
    assert event is not None and event.kind == EventKind.file and event.attachment is not None
    assert (event.attachment.kind, event.attachment.file_id, event.attachment.name) == (
        "document",
        "abc+/=",
        "台账.xlsx",
    )
    sticker = to_event(json.dumps(fake.robot_frame(ZHANG, msgtype="interactiveCard", content={})))
    assert sticker is not None and sticker.kind == EventKind.unsupported
    click = to_event(json.dumps(fake.card_frame(ZHANG, "card-1", encode_button("pick:7:9"))))
    assert click is not None and click.kind == EventKind.button
    assert (click.button_data, click.chat_id, click.message_id) == ("pick:7:9", ZHANG, "card-1")
    assert click.update_id.startswith("card:")
    with pytest.raises(FrameRefused):
        to_event("[]")
    assert decode_button(encode_button("bare:3:n 中文")) == "bare:3:n 中文"
    assert decode_button("button_1646816888257") is None


# --- sending ------------------------------------------------------------------------------


async def test_markdown_is_sent_as_sample_markdown_with_a_title(dt: DingTalkDriver) -> None:
    said = await dt.say("王局", "/digest")
    digest = next(s.raw for s in said if s.raw.kind == "markdown")
    assert digest.title and "督办周报" in digest.title and len(digest.title) <= 30
    assert "  \n" in (digest.text or "")  # line breaks DingTalk keeps
    assert any(s.raw.kind == "image" for s in said)  # the chart


async def test_long_text_is_split_at_the_limit_on_line_boundaries(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk
) -> None:
    lines = [f"{n:05d} " + "进" * 90 for n in range(150)]
    text = "\n".join(lines)
    await messenger.send_text("u1", text)
    parts = [m.text or "" for m in dtfake.messages_to("u1")]
    assert len(parts) == 3 and all(len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text


async def test_an_expired_token_is_fetched_again_once(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk
) -> None:
    await messenger.send_text("u1", "一")
    dtfake.expire_tokens()
    await messenger.send_text("u1", "二")
    assert dtfake.tokens_issued == 2
    sends = [r.status for r in dtfake.requests if r.path == "robot/oToMessages/batchSend"]
    assert sends == [200, 401, 200]
    dtfake.fail_next("robot/oToMessages/batchSend", 5, status=401, code="InvalidAuthentication")
    with pytest.raises(DingTalkError) as refused:
        await messenger.send_text("u1", "三")
    assert refused.value.status == 401 and dtfake.stats["401"] == 3  # one renewal, no loop
    assert [m.text for m in dtfake.messages_to("u1")] == ["一", "二"]


async def test_rate_limits_are_waited_out_and_tried_again(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk
) -> None:
    dtfake.fail_next("robot/oToMessages/batchSend", 2)  # 403 QpsLimitForApi
    dtfake.http_error_next("robot/oToMessages/batchSend", 429)
    dtfake.flow_control_next()
    await messenger.send_text("u1", "限流后送达")
    assert [m.text for m in dtfake.messages_to("u1")] == ["限流后送达"]
    assert dtfake.stats["robot/oToMessages/batchSend"] == 5
    dtfake.fail_next("robot/oToMessages/batchSend", 10)
    with pytest.raises(DingTalkError) as gave_up:
        await messenger.send_text("u1", "放弃")
    assert gave_up.value.code == "Forbidden.AccessDenied.QpsLimitForApi"


async def test_errors_carry_no_token_and_no_secret(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk
) -> None:
    dtfake.fail_next("robot/oToMessages/batchSend", status=400, code="invalidParameter.x")
    with pytest.raises(DingTalkError) as failed:
        await messenger.send_text("u1", "x")
    token = dtfake.current_token
    assert (
        token and token not in str(failed.value) and dtfake.client_secret not in str(failed.value)
    )
    dtfake.fail_next("media/upload", errcode=40004)
    path = Path(os.environ["DATA_DIR"]) / "a.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DingTalkError) as upload:
        await messenger.send_file("u1", path)
    assert token not in str(upload.value) and "access_token" not in str(upload.value)


async def test_files_and_pictures_are_uploaded_and_sent(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk, tmp_path: Path
) -> None:
    ledger = tmp_path / "台账.xlsx"
    ledger.write_bytes(b"PK\x03\x04" + bytes(500))
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    await messenger.send_file("u1", ledger, caption="本周台账")
    await messenger.send_photo("u1", chart)
    caption, file, image = dtfake.messages_to("u1")
    assert caption.text == "本周台账"
    assert (file.kind, file.param["fileName"], file.param["fileType"]) == (
        "file",
        "台账.xlsx",
        "xlsx",
    )
    assert image.kind == "image" and image.media_id == image.param["photoURL"]
    uploads = {u.media_id: u for u in dtfake.uploads}
    assert uploads[file.media_id or ""].data == ledger.read_bytes()
    assert uploads[image.media_id or ""].type == "image"


async def test_files_people_send_are_streamed_into_the_capped_sink(
    messenger: DingTalkMessenger, dtfake: FakeDingTalk, tmp_path: Path
) -> None:
    data = b"%PDF-1.4\n" + bytes(300_000)
    code = dtfake.user_file(data, "方案.pdf", "application/pdf")
    sink = CappedWriter(tmp_path / "ok", 1_000_000)
    fetched = await messenger.fetch_file(Attachment("document", code, name="方案.pdf"), sink)
    sink.finish()
    assert (tmp_path / "ok").read_bytes() == data and fetched.mime == "application/pdf"
    small = CappedWriter(tmp_path / "small", 100_000)
    with pytest.raises(FileTooBig):
        await messenger.fetch_file(Attachment("document", code), small)
    small.discard()
    with pytest.raises(FetchFailed) as unknown:
        await messenger.fetch_file(Attachment("document", "no-such-code"), small)
    assert "http" not in str(unknown.value) and (dtfake.current_token or "-") not in str(
        unknown.value
    )


# --- the group robot ----------------------------------------------------------------------


async def test_the_group_robot_signs_and_splits_long_digests(dtfake: FakeDingTalk) -> None:
    robot = GroupRobot(dtfake.url, dtfake.group_token, dtfake.group_secret)
    digest = "\n".join(f"{n}. 第{n}项 进展正常，已完成百分之{n % 100}" for n in range(1, 1500))
    sent = await robot.send_markdown("## 督办周报\n" + digest)
    messages = dtfake.group_messages
    assert sent == len(messages) >= 3
    assert all(len((m.text or "").encode()) <= MAX_MARKDOWN_BYTES + 4000 for m in messages)
    assert all(m.title == "督办周报" and "sign" in m.query for m in messages)
    forged = GroupRobot(dtfake.url, dtfake.group_token, "SECnotthegroupsecret")
    with pytest.raises(GroupRobotError, match="310000"):
        await forged.send_markdown("x")
    stale = GroupRobot(
        dtfake.url, dtfake.group_token, dtfake.group_secret, now=lambda: time.time() - 7200
    )
    with pytest.raises(GroupRobotError, match="310000"):
        await stale.send_markdown("x")


async def test_the_window_pacer_keeps_to_its_limit() -> None:
    pacer = WindowPacer(3, window=0.3)
    started = time.monotonic()
    for _ in range(3):
        await pacer.wait("group")
    assert time.monotonic() - started < 0.1
    await pacer.wait("group")
    assert time.monotonic() - started >= 0.29


# --- secrets and the SDK ------------------------------------------------------------------


async def test_no_secret_is_logged_at_debug(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(db_url, start=START) as driver:
        _fast(driver)
        await driver.say("王局", "/digest")
        await driver.say("赵主任", "/export")
        await driver.app.dispatcher.group.send_markdown("## 督办周报\n测试")  # type: ignore[union-attr]
        driver.fake.expire_tokens()
        await driver.say("张三", "9 60%")
        fake = driver.fake
        secrets = [fake.client_secret, fake.group_token, fake.group_secret or "", *fake._tokens]
    assert fake.tokens_issued == 2 and len(fake.group_messages) == 1
    logged = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert "batchSend" in logged or "oToMessages" in logged  # DEBUG/INFO lines were captured
    leaked = [s for s in secrets if s and s in logged]
    assert leaked == []


async def test_the_sdk_endpoint_is_set_per_client_not_process_wide(dt: DingTalkDriver) -> None:
    import dingtalk_stream
    from dingtalk_stream import utils

    assert "DINGTALK_OPENAPI_ENDPOINT" not in os.environ
    assert utils.DINGTALK_OPENAPI_ENDPOINT == "https://api.dingtalk.com"
    assert dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API.startswith(
        "https://api.dingtalk.com/"
    )
    channel = dt.app.channels[0]
    client = channel.client  # type: ignore[attr-defined]
    assert client.open_connection_api == f"{dt.fake.url}/v1.0/gateway/connections/open"
    assert dt.fake.stats["gateway/connections/open"] == 1
    with pytest.raises(RuntimeError):
        client.get_access_token()
    with pytest.raises(RuntimeError):
        client.upload_to_dingtalk(b"x")


async def test_a_refused_store_is_acked_as_a_failure(dt: DingTalkDriver) -> None:
    async def broken(platform: str, received: object) -> list[bool]:
        raise OSError("disk full")

    original = dt.app.core.store
    dt.app.core.store = broken  # type: ignore[method-assign]
    try:
        pushed = dt.fake.user_says(ZHANG, "9 60%")
        ack = await dt.fake.await_ack(pushed.message_id)
    finally:
        dt.app.core.store = original  # type: ignore[method-assign]
    assert ack.code == 500  # DingTalk sends it again
    await dt._wait_quiet()
    assert dt.fake.messages_to(ZHANG) == [] and _inbox(dt) == []
    dt.fake.redeliver(pushed.message_id)
    assert (await dt.fake.await_ack(pushed.message_id, 2)).code == 200
    await dt._wait_handled({f"msg:{pushed.msg_id}"})
    assert [r.percent for r in _reports(dt)] == [60]


async def test_a_frame_delivered_twice_at_once_is_handled_once(dt: DingTalkDriver) -> None:
    pushed = dt.fake.user_says(ZHANG, "9 75%")
    dt.fake.redeliver(pushed.message_id)  # before the first was acked: one store batch
    acks = await dt.fake.await_ack(pushed.message_id, 2)
    assert acks.code == 200
    await dt._wait_handled({f"msg:{pushed.msg_id}"})
    await dt._wait_quiet()
    assert [r.percent for r in _reports(dt)] == [75]
    assert len(dt.fake.messages_to(ZHANG)) == 1 and len(_inbox(dt)) == 1


# --- the spec -----------------------------------------------------------------------------


def test_the_spec_imports_nothing_heavy_and_checks_the_group_settings() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.channels.dingtalk as d; "
        "print(d.SPEC.name, sorted(m for m in ('dingtalk_stream', 'httpx', 'aiohttp', "
        "'websockets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["dingtalk", "[]"]

    from bot.channels import registry
    from bot.i18n import UserError
    from bot.settings import Settings

    base: dict[str, Any] = {"dingtalk_client_id": "dingid", "dingtalk_client_secret": "secret"}
    whole = Settings(_env_file=None, **base)  # type: ignore[call-arg]
    assert [s.name for s in registry.configured(whole)] == ["dingtalk"]
    half = Settings(_env_file=None, **{**base, "dingtalk_group_secret": "SECx"})  # type: ignore[call-arg]
    with pytest.raises(UserError):
        registry.configured(half)
    assert registry.account_id("dingtalk", " zhangsan01 ") == "zhangsan01"
    assert registry.account_id("dingtalk", "张 三") is None


async def test_refused_credentials_stop_the_start_with_a_message(
    dtfake: FakeDingTalk, tmp_path: Path
) -> None:
    from pydantic import SecretStr

    from bot.channels.dingtalk.channel import DingTalkChannel
    from bot.chat import ChatCore
    from bot.i18n import Translator, UserError
    from bot.settings import Settings
    from handlers.registry import build_router

    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = db.make_engine(url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        dingtalk_client_id=dtfake.client_id,
        dingtalk_client_secret=SecretStr("not-the-secret"),
        dingtalk_api_base_url=dtfake.url,
        dingtalk_oapi_base_url=dtfake.url,
    )
    core = ChatCore(engine, settings, build_router())
    channel = DingTalkChannel(settings, core)
    try:
        with pytest.raises(UserError) as refused:
            await channel.start()
    finally:
        core.close()
        engine.dispose()
    message = refused.value.render(Translator("zh-CN"))
    assert "invalidClientIdOrSecret" in message and "not-the-secret" not in message
    assert dtfake.stats["gateway/connections/open"] == 0
