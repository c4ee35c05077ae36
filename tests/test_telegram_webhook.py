"""Telegram in webhook mode: the secret header checked first, updates deduplicated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram.error import InvalidToken
from telegram.ext import ApplicationBuilder, ExtBot

from bot.channels.aiohttp_request import AiohttpRequest
from bot.channels.telegram.channel import (
    SECRET_HEADER,
    TelegramMessenger,
    file_url_for,
    rate_limiter,
)
from bot.events import Button
from bot.settings import Settings
from tests.fakes import FakeTelegram
from tests.harness import ZHANG, Dialog, running_bot

SECRET = "s3cret-token-for-tests"


@pytest.fixture
async def hooked(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(
        server,
        db_url,
        telegram_webhook_url="https://duban.example.org/telegram/webhook",
        telegram_webhook_secret=SECRET,
    ) as dialog:
        yield dialog


def _update(update_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1685584800,
            "chat": {"id": ZHANG, "type": "private", "first_name": "张三"},
            "from": {"id": ZHANG, "is_bot": False, "first_name": "张三"},
            "text": text,
        },
    }


async def _post(dialog: Dialog, body: Any, headers: dict[str, str]) -> httpx.Response:
    url = f"http://127.0.0.1:{dialog.app.web_port}/telegram/webhook"
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=body, headers=headers)


async def test_webhook_is_registered_with_its_secret(hooked: Dialog, server: FakeTelegram) -> None:
    assert server.webhook is not None
    assert server.webhook["url"] == "https://duban.example.org/telegram/webhook"
    assert server.webhook["secret_token"] == SECRET
    assert server.stats["getUpdates"] == 0


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}])
async def test_wrong_or_missing_secret_is_refused(
    hooked: Dialog, server: FakeTelegram, headers: dict[str, str]
) -> None:
    response = await _post(hooked, _update(10, "9 60%"), headers)
    assert response.status_code == 403
    assert hooked.reports() == []
    assert server.messages_to(ZHANG) == []


async def test_update_through_the_webhook_is_handled_once(
    hooked: Dialog, server: FakeTelegram
) -> None:
    first = await _post(hooked, _update(11, "9 60% 主体完工"), {SECRET_HEADER: SECRET})
    assert first.status_code == 200
    # the 200 says "stored"; the answer follows from the inbox
    assert hooked.scalar("SELECT count(*) FROM inbox") == 1
    await _replies(server, ZHANG, 1)
    assert "已记录 第9项" in server.messages_to(ZHANG)[-1].plain_text
    # Telegram delivers again (it did not see our answer): no second report, no second reply.
    again = await _post(hooked, _update(11, "9 60% 主体完工"), {SECRET_HEADER: SECRET})
    assert again.status_code == 200
    await asyncio.sleep(0.2)
    assert len(hooked.reports()) == 1
    assert len(server.messages_to(ZHANG)) == 1
    assert hooked.scalar("SELECT count(*) FROM inbox") == 1


async def _replies(server: FakeTelegram, chat: int, count: int) -> None:
    """Wait (up to 5 s) until the fake server holds `count` messages to a chat."""
    for _ in range(500):
        if len(server.messages_to(chat)) >= count:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{count} replies to {chat} did not arrive")


async def test_a_body_that_is_not_an_update(hooked: Dialog) -> None:
    url = f"http://127.0.0.1:{hooked.app.web_port}/telegram/webhook"
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=b"{not json", headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400


async def test_healthz(hooked: Dialog) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{hooked.app.web_port}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "channels": ["telegram"]}


async def test_long_messages_are_split_on_lines(hooked: Dialog, server: FakeTelegram) -> None:
    text = "\n".join(f"第{i}行：" + "进" * 40 for i in range(200))  # about 9,000 characters
    messenger = hooked.app.core.messengers["telegram"]
    await messenger.send_text(str(ZHANG), text)
    parts = [m.plain_text for m in server.messages_to(ZHANG)]
    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == text


def test_file_url_follows_the_api_url() -> None:
    assert file_url_for("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert file_url_for("http://127.0.0.1:9/bot") == "http://127.0.0.1:9/file/bot"


async def test_sending_at_the_servers_own_rate_meets_no_429(server: FakeTelegram) -> None:
    # The limiter is paced in tenths of a second: at TELEGRAM_MAX_RATE equal to the server's
    # limit, a fan-out never bursts into an emptied bucket.
    server.reset()
    server.rate_limit(50)
    settings = Settings(_env_file=None, telegram_max_rate=50)  # type: ignore[call-arg]
    limiter = rate_limiter(settings)
    bot = ExtBot(
        server.token,
        base_url=f"{server.url}/bot",
        request=AiohttpRequest(connection_pool_size=32),
        rate_limiter=limiter,
    )
    chats = [900_000 + n for n in range(20)]
    for chat in chats:
        server.user_says(chat, "hi")  # the fake knows the chats
    try:
        async with bot:
            await asyncio.gather(
                *(bot.send_message(chats[n % 20], f"第 {n} 条") for n in range(150))
            )
    finally:
        server.rate_limit(None)
    assert server.stats["sendMessage"] == 150
    assert server.stats["429"] == 0


async def test_a_rejected_token_is_named_as_such(server: FakeTelegram) -> None:
    server.reset()
    app = ApplicationBuilder().token(server.token).base_url(f"{server.url}/bot").build()
    async with app:
        messenger = TelegramMessenger(app.bot)
        server.fail_next("sendMessage", error_code=401)
        with pytest.raises(InvalidToken, match="rejected the bot token"):
            await messenger.send_text(str(ZHANG), "测试")
        sent = await messenger.send_text(str(ZHANG), "第二条", buttons=((Button("好", "ok"),),))
    (message,) = server.messages_to(ZHANG)
    assert (message.plain_text, sent.message_id) == ("第二条", str(message.message_id))
