"""The WeCom channel: encrypted callbacks in (real wechatpy crypto), app messages out at a fake
WeCom API over loopback HTTP; token handling, retries, refusals and the group robot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from bot.channels.wecom.channel import MAX_TEXT_BYTES, CallbackCrypto, signature
from bot.channels.wecom.group import GroupRobot
from bot.models import Contact, InboxEntry, Outbox
from bot.services import accounts
from tests.fakes.wecom_api import FakeWeCom
from tests.harness import WECOM_AES_KEY, WECOM_TOKEN, WeComDialog, running_wecom_bot


@pytest.fixture
async def wecom(fake: FakeWeCom, db_url: str) -> AsyncIterator[WeComDialog]:
    async with running_wecom_bot(fake, db_url) as dialog:
        dialog.app.core.messengers["wecom"].backoff = 0.01  # type: ignore[attr-defined]
        yield dialog


# --- the callback endpoint ------------------------------------------------------------------


async def test_url_verification_answers_the_plain_echostr(wecom: WeComDialog) -> None:
    plain = "echo-1234567890"
    encrypted = wecom.crypto._encrypt_message  # only to build a real echostr below
    del encrypted
    from wechatpy.enterprise.crypto import PrpCrypto

    echostr = PrpCrypto(wecom.crypto.key).encrypt(plain, wecom.fake.corp_id).decode()
    ts, nonce = str(int(time.time())), "n1"
    params = {
        "msg_signature": signature(WECOM_TOKEN, ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }
    async with httpx.AsyncClient() as client:
        ok = await client.get(wecom.url, params=params)
        forged = await client.get(wecom.url, params={**params, "msg_signature": "0" * 40})
    assert ok.status_code == 200 and ok.text == plain
    assert forged.status_code == 403


async def test_text_message_is_answered_200_empty_then_handled(wecom: WeComDialog) -> None:
    params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 60% 华侨实验小学主体完工"))
    async with httpx.AsyncClient() as client:
        response = await client.post(wecom.url, params=params, content=body)
    assert response.status_code == 200 and response.content == b""
    await wecom.handled(1)
    (answer,) = wecom.fake.messages_to("zhangsan")
    assert "已记录 第9项" in answer.content
    (report,) = wecom.reports()
    assert report.percent == 60


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ("signature", 403),
        ("ciphertext", 403),
        ("corp", 403),
        ("xml", 400),
        ("huge", 400),
    ],
)
async def test_bad_callbacks_are_refused_and_change_nothing(
    wecom: WeComDialog, tamper: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    secret_text = "9 60% 不该被处理的内容"
    params, body = wecom.envelope(wecom.text_xml("zhangsan", secret_text))
    if tamper == "signature":
        params["msg_signature"] = "f" * 40
    elif tamper == "ciphertext":
        from wechatpy.enterprise.crypto import WeChatCrypto

        # a well-signed envelope whose ciphertext is not ours to decrypt
        other = WeChatCrypto(WECOM_TOKEN, "Z" * 43, wecom.fake.corp_id)
        params, body = _envelope_with(other, wecom.text_xml("zhangsan", secret_text))
    elif tamper == "corp":
        from wechatpy.enterprise.crypto import WeChatCrypto

        other = WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, "ww-another-corp")
        params, body = _envelope_with(other, wecom.text_xml("zhangsan", secret_text))
    elif tamper == "xml":
        body = b"<xml><Encrypt>unterminated"
    elif tamper == "huge":
        body = b"<xml>" + b"x" * (1 << 20) + b"</xml>"
    async with httpx.AsyncClient() as client:
        response = await client.post(wecom.url, params=params, content=body)
    assert response.status_code == status
    await asyncio.sleep(0.05)
    assert wecom.reports() == []
    assert wecom.fake.messages_to("zhangsan") == []
    with Session(wecom.engine) as s:
        assert s.exec(select(InboxEntry)).all() == []
    warnings = [r for r in caplog.records if r.name == "bot.channels.wecom.channel"]
    assert warnings and all(secret_text not in r.getMessage() for r in caplog.records)


def _envelope_with(crypto: object, xml: str) -> tuple[dict[str, str], bytes]:
    import xmltodict

    ts, nonce = str(int(time.time())), "n2"
    encrypted = crypto.encrypt_message(xml, nonce, ts)  # type: ignore[attr-defined]
    parsed = xmltodict.parse(encrypted)["xml"]
    return {"msg_signature": parsed["MsgSignature"], "timestamp": ts, "nonce": nonce}, (
        encrypted.encode()
    )


async def test_the_same_msgid_twice_gives_one_report(wecom: WeComDialog) -> None:
    xml = wecom.text_xml("zhangsan", "9 60%", msg_id=123456789)
    assert await wecom.post(xml) == 200
    assert await wecom.post(xml) == 200  # stored once: the second delivery is not handled
    await wecom.handled(1)
    await asyncio.sleep(0.1)
    assert len(wecom.reports()) == 1
    with Session(wecom.engine) as s:
        assert len(s.exec(select(InboxEntry)).all()) == 1
    assert len(wecom.fake.messages_to("zhangsan")) == 1


async def test_a_slow_database_holds_the_200_until_the_message_is_stored(
    wecom: WeComDialog,
) -> None:
    import sqlalchemy as sa

    # Hold the database's write lock (SQLite) or the inbox table (PostgreSQL) for a while:
    # the callback is answered only once its message is stored, still within WeCom's 5 s.
    conn = wecom.engine.connect()
    if wecom.engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(sa.text("LOCK TABLE inbox IN EXCLUSIVE MODE"))
    release = asyncio.get_running_loop().call_later(0.8, lambda: (conn.rollback(), conn.close()))
    try:
        params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 70%"))
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(wecom.url, params=params, content=body)
        answered = time.perf_counter() - started
    finally:
        release.cancel()
        if not conn.closed:
            conn.rollback()
            conn.close()
    assert response.status_code == 200
    assert 0.7 < answered < 5.0
    with Session(wecom.engine) as s:
        assert len(s.exec(select(InboxEntry)).all()) == 1
    await wecom.handled(1)
    assert [r.percent for r in wecom.reports()] == [70]


# --- what comes in ------------------------------------------------------------------------


async def test_unknown_user_gets_the_registration_message(wecom: WeComDialog) -> None:
    assert "还未登记" in await wecom.says_one("stranger", "你好")


async def test_enter_agent_gets_a_welcome(wecom: WeComDialog) -> None:
    assert await wecom.post(wecom.event_xml("zhangsan", "enter_agent", EventKey="")) == 200
    await wecom.handled(1)
    texts = [m.content for m in wecom.fake.messages_to("zhangsan")]
    assert "张三，您好！" in texts[0] and any("/my" in t for t in texts)


async def test_a_location_gets_a_polite_request_for_text(wecom: WeComDialog) -> None:
    """(Images, videos and voice messages are evidence or read: tests/test_evidence.py.)"""
    xml = (
        f"<xml><ToUserName><![CDATA[{wecom.fake.corp_id}]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1685584800</CreateTime>"
        "<MsgType><![CDATA[location]]></MsgType><Location_X>22.58</Location_X>"
        "<Location_Y>113.08</Location_Y><Scale>15</Scale><Label><![CDATA[江门]]></Label>"
        "<MsgId>42</MsgId><AgentID>1000002</AgentID></xml>"
    )
    assert await wecom.post(xml) == 200
    await wecom.handled(1)
    assert "只能处理文字消息" in wecom.fake.messages_to("zhangsan")[0].content


async def test_choice_cards_and_the_click(wecom: WeComDialog) -> None:
    (card,) = await wecom.say("zhangsan", "本周召开推进会，进度50%")
    assert card.msgtype == "template_card"
    tpl = card.card
    assert tpl["card_type"] == "button_interaction"
    keys = [b["key"] for b in tpl["button_list"]]
    assert len(keys) == 3 and all(k.startswith("pick:") for k in keys)  # 9, 10, not a report
    assert wecom.reports() == []
    click = wecom.event_xml(
        "zhangsan",
        "template_card_event",
        EventKey=keys[1],
        TaskId=tpl["task_id"],
        CardType="button_interaction",
    )
    assert await wecom.post(click) == 200
    await wecom.handled(2)
    assert "已记录 第10项" in wecom.fake.messages_to("zhangsan")[-1].content
    assert [r.item_id for r in wecom.reports()] == [10]


async def test_every_handler_works_unchanged(wecom: WeComDialog) -> None:
    assert "9. 持续扩增教育优质资源" in await wecom.says_one("zhangsan", "/my")
    assert "已记录 第9项" in await wecom.says_one("zhangsan", "#9 已完成")
    assert "已撤回" in await wecom.says_one("zhangsan", "/undo")
    assert "第9项「持续扩增教育优质资源」" in await wecom.says_one("wangju", "/status 9")
    assert "您没有使用 /assign 的权限" in await wecom.says_one("zhangsan", "/assign 9 李四")
    assert "已将第 22 项" in await wecom.says_one("zhaozhuren", "/assign 22 张三")
    await wecom.fake.await_until(lambda f: len(f.messages_to("zhangsan")) >= 5)
    assert "您有新的督办事项：第 22 项" in wecom.fake.messages_to("zhangsan")[-1].content


async def test_admin_binds_a_wecom_account_in_chat(wecom: WeComDialog) -> None:
    assert "已将 陈五 绑定到企业微信账号 chenwu" in await wecom.says_one(
        "zhaozhuren", "/wecom 陈五 chenwu"
    )
    assert "已记录 第8项" in await wecom.says_one("chenwu", "8 20%")
    taken = await wecom.says_one("zhaozhuren", "/wecom 陈五 zhangsan")
    assert "已绑定给“张三”" in taken
    with Session(wecom.engine) as s:
        chen = s.exec(select(Contact).where(Contact.name == "陈五")).one()
        held = accounts.account_of(s, chen.id or 0, "wecom")
        assert held is not None and held.account_id == "chenwu"


# --- what goes out ------------------------------------------------------------------------


async def test_long_text_is_split_at_2048_bytes_on_lines(wecom: WeComDialog) -> None:
    text = "\n".join(f"第{i}行：" + "进展" * 30 for i in range(60))  # about 11,000 bytes
    await wecom.app.core.messengers["wecom"].send_text("zhangsan", text)
    parts = [m.content for m in wecom.fake.messages_to("zhangsan")]
    assert len(parts) >= 6
    assert all(len(p.encode()) <= MAX_TEXT_BYTES for p in parts)
    assert "\n".join(parts) == text


async def test_an_expired_token_is_refetched_once(wecom: WeComDialog) -> None:
    await wecom.say("zhangsan", "9 10%")
    issued = wecom.fake.tokens_issued
    wecom.fake.expire_tokens()
    assert "已记录 第9项" in await wecom.says_one("zhangsan", "9 20%")
    assert wecom.fake.tokens_issued == issued + 1


async def test_a_server_answering_42001_forever_fails_cleanly_and_the_notice_waits(
    wecom: WeComDialog,
) -> None:
    wecom.fake.always_fail("message/send", 42001)
    assert await wecom.post(wecom.text_xml("zhaozhuren", "/assign 22 张三")) == 200
    await wecom.handled(1)
    await asyncio.sleep(0.2)
    # no recursion: one refetch per send, then the error surfaces
    assert wecom.fake.stats["message/send"] <= 6
    with Session(wecom.engine) as s:
        (notice,) = s.exec(select(Outbox).where(Outbox.kind != "reply")).all()
    assert notice.state == "pending" and notice.attempts == 1 and notice.last_error
    wecom.fake.clear_faults()
    wecom.clock.advance(__import__("datetime").timedelta(minutes=5))
    await wecom.app.dispatcher.deliver_due()
    with Session(wecom.engine) as s:
        (notice,) = s.exec(select(Outbox).where(Outbox.kind != "reply")).all()
    assert notice.state == "sent"
    assert "您有新的督办事项" in wecom.fake.messages_to("zhangsan")[-1].content


async def test_limits_and_network_errors_are_retried(wecom: WeComDialog) -> None:
    wecom.fake.fail_next("message/send", 1, errcode=45009)
    wecom.fake.fail_next("message/send", 1, errcode=45033)
    wecom.fake.http_error_next("message/send", status=502)
    assert "已记录 第9项" in await wecom.says_one("zhangsan", "9 30%")
    assert wecom.fake.stats["message/send"] == 4


async def test_files_go_by_media_upload(wecom: WeComDialog, tmp_path: Path) -> None:
    ledger = tmp_path / "台账.xlsx"
    ledger.write_bytes(b"PK\x03\x04" + b"0" * 2000)
    await wecom.app.core.messengers["wecom"].send_file("wangju", ledger, caption="本周台账")
    (upload,) = wecom.fake.uploads
    assert upload.filename == "台账.xlsx" and upload.size == 2004
    kinds = [m.msgtype for m in wecom.fake.messages_to("wangju")]
    assert kinds == ["text", "file"]


async def test_member_pacing_stays_under_30_a_minute(fake: FakeWeCom) -> None:
    from bot.channels.wecom.channel import MemberPacer

    pacer = MemberPacer(limit=3, window=0.3)
    started = time.perf_counter()
    for _ in range(7):
        await pacer.wait("zhangsan")
    assert time.perf_counter() - started >= 0.6  # 7 messages at 3 per 0.3 s: two waits


async def test_group_robot_markdown_is_split_at_4096_bytes(fake: FakeWeCom) -> None:
    robot = GroupRobot(fake.api_base, fake.group_key)
    text = "\n".join(f"- **第{i}项** 进展顺利，" + "推进" * 40 for i in range(40))
    sent = await robot.send_markdown(text)
    contents = [m.content for m in fake.group_messages]
    assert sent == len(contents) >= 3
    assert all(len(c.encode()) <= 4096 for c in contents)
    assert "\n".join(contents) == text


def test_crypto_refuses_a_wrong_key_length() -> None:
    with pytest.raises(ValueError, match="43-character"):
        CallbackCrypto(WECOM_TOKEN, "short", "corp")


async def test_digest_on_wecom_is_markdown_with_an_image(wecom: WeComDialog) -> None:
    await wecom.say("zhangsan", "9 60%")
    answers = await wecom.say("wangju", "/digest")
    kinds = [m.msgtype for m in answers]
    assert kinds[0] == "markdown" and kinds[-1] == "image"
    assert "督办周报" in answers[0].content
    assert any(u.type == "image" for u in wecom.fake.uploads)


async def test_queued_digest_goes_to_leaders_and_the_group_robot(
    fake: FakeWeCom, db_url: str
) -> None:
    from bot.services.digest import build_digest
    from bot.services.plans import current_plan
    from bot.services.progress import StatusRules
    from bot.services.sending import queue_digest

    async with running_wecom_bot(fake, db_url, wecom_group_webhook_key=fake.group_key) as wecom:
        with Session(wecom.engine) as session:
            digest = build_digest(
                session,
                current_plan(session),
                now=wecom.clock(),
                tz=wecom.app.settings.tz,
                rules=StatusRules(),
            )
            assert queue_digest(session, digest, locale="zh-CN", now=wecom.clock()) == 1
            session.commit()
        await wecom.app.dispatcher.deliver_due()
        parts = wecom.fake.messages_to("wangju")  # split at 2048 bytes
        assert {p.msgtype for p in parts} == {"markdown"} and "督办周报" in parts[0].content
        assert all(len(p.content.encode()) <= 2048 for p in parts)
        assert wecom.fake.group_messages and "督办周报" in wecom.fake.group_messages[0].content
        with Session(wecom.engine) as session:
            assert {o.state for o in session.exec(select(Outbox)).all()} == {"sent"}
