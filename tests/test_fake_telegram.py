"""The fake Telegram Bot API, driven by the real python-telegram-bot Bot and Application."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes import FakeTelegram, FilePart

App = Application[Any, Any, Any, Any, Any, Any]

ALICE = 1001
BOB = 1002


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it PTB 22 warns (PTBDeprecationWarning) while *constructing* RetryAfter,
    # which pytest's filterwarnings=error turns into an exception.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
def server() -> Iterator[FakeTelegram]:
    """A running fake Bot API server."""
    with FakeTelegram() as fake:
        yield fake
    assert fake.internal_errors == []


def build_app(server: FakeTelegram, token: str | None = None) -> App:
    """A PTB Application pointed at the fake server."""
    return (
        ApplicationBuilder()
        .token(token or server.token)
        .base_url(f"{server.url}/bot")
        .base_file_url(f"{server.url}/file/bot")
        .build()
    )


@contextlib.asynccontextmanager
async def polling(app: App) -> AsyncIterator[list[BaseException]]:
    """Run the application with long polling; yields the errors its handlers raised."""
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    app.add_error_handler(on_error)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield errors
        finally:
            await app.updater.stop()
            await app.stop()


async def test_get_me_and_unknown_method(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        me = await bot.get_me()
        assert me.is_bot
        assert me.username == "duban_test_bot"
        assert me.id == server.bot_id
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod")
    assert server.stats["getMe"] == 2  # initialize() + get_me()
    assert server.stats["404"] == 1


async def test_wrong_token_gives_invalid_token(server: FakeTelegram) -> None:
    for token in ("123456789:wrong-token", "not-a-token"):
        bot = build_app(server, token).bot
        with pytest.raises(InvalidToken):
            await bot.initialize()
        await bot.shutdown()
    assert server.stats["401"] == 1
    assert server.stats["404"] == 1


async def test_command_and_text_reach_handlers(server: FakeTelegram) -> None:
    app = build_app(server)
    seen: list[tuple[str, str]] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        seen.append(("start", " ".join(context.args or [])))
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("完成", callback_data="done:7")]])
        await update.effective_message.reply_text(
            "<b>欢迎</b> &amp; hello", parse_mode="HTML", reply_markup=keyboard, do_quote=True
        )

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_message.text
        seen.append(("text", update.effective_message.text))
        await update.effective_message.reply_text(f"收到：{update.effective_message.text}")

    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with polling(app) as errors:
        server.user_says(ALICE, "/start plan 2023", first_name="Alice")
        (welcome,) = await server.await_messages(ALICE, 1)
        server.user_says(ALICE, "/导入 is not a Telegram command")
        server.user_says(BOB, "hello")
        await server.await_messages(ALICE, 2)
        (to_bob,) = await server.await_messages(BOB, 1)
    assert errors == []
    assert seen[0] == ("start", "plan 2023")
    assert ("text", "/导入 is not a Telegram command") in seen
    assert welcome.text == "<b>欢迎</b> &amp; hello"
    assert welcome.plain_text == "欢迎 & hello"
    assert welcome.parse_mode == "HTML"
    assert welcome.reply_markup == {
        "inline_keyboard": [[{"text": "完成", "callback_data": "done:7"}]]
    }
    assert welcome.buttons == [("完成", "done:7")]
    assert welcome.reply_to_message_id == 1  # the user's /start, message 1 of the chat
    assert welcome.message_id == 2
    assert welcome.result["from"]["id"] == server.bot_id
    assert to_bob.text == "收到：hello"
    assert to_bob.message_id == 2


async def test_button_click_reaches_callback_query_handler(server: FakeTelegram) -> None:
    app = build_app(server)
    clicks: list[str] = []

    async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("完成", callback_data="done:7")],
                [InlineKeyboardButton("延期", callback_data="later:7")],
            ]
        )
        await update.effective_message.reply_text("第7项进展？", reply_markup=keyboard)

    async def clicked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        clicks.append(query.data)
        await query.answer("已记录")
        await query.edit_message_text(f"第7项：{query.data}")

    app.add_handler(CommandHandler("ask", ask))
    app.add_handler(CallbackQueryHandler(clicked))
    async with polling(app) as errors:
        server.user_says(ALICE, "/ask")
        (question,) = await server.await_messages(ALICE, 1)
        assert question.message_id is not None
        server.user_clicks(ALICE, question.message_id, "延期")  # by the button's text
        await server.await_until(lambda s: bool(s.calls("editMessageText")))
        with pytest.raises(ValueError, match="no button"):
            server.user_clicks(ALICE, question.message_id, "done:7")  # keyboard is gone
    assert errors == []
    assert clicks == ["later:7"]
    assert server.callback_answers[0]["text"] == "已记录"
    edited = server.message(ALICE, question.message_id)
    assert edited is not None
    assert edited["text"] == "第7项：later:7"
    assert "reply_markup" not in edited  # editMessageText without markup drops the keyboard


async def test_documents_are_uploaded_and_downloaded(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        content = b"PK\x03\x04 fake docx" * 100
        message = await bot.send_document(
            ALICE, content, filename='2023年"工作要点".docx', caption="年度计划"
        )
        assert message.document is not None
        assert message.document.file_name == '2023年"工作要点".docx'
        assert message.caption == "年度计划"
        photo = await bot.send_photo(ALICE, b"\x89PNG\r\n\x1a\n" + bytes(16), caption="图")
        assert photo.photo

        update_id = server.user_sends_document(BOB, "回执.txt", "已完成".encode(), caption="回执")
        (update,) = await bot.get_updates(offset=update_id)
        assert update.message is not None and update.message.document is not None
        file = await update.message.document.get_file()
        assert bytes(await file.download_as_bytearray()) == "已完成".encode()

    sent = server.messages_to(ALICE)
    assert [c.method for c in sent] == ["sendDocument", "sendPhoto"]
    (upload,) = sent[0].files
    assert upload.filename == '2023年"工作要点".docx'
    assert upload.size == len(content)
    assert upload.data == content
    assert sent[0].caption == "年度计划"


async def test_faults_are_seen_by_ptb(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        server.fail_next("sendMessage", 1, error_code=429, retry_after=3)
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ALICE, "hi")
        assert caught.value.retry_after == dtm.timedelta(seconds=3)
        server.fail_next("sendMessage", 1, error_code=403)
        with pytest.raises(Forbidden):
            await bot.send_message(ALICE, "hi")
        server.block(BOB)
        with pytest.raises(Forbidden, match=r"(?i)blocked"):
            await bot.send_message(BOB, "hi")
        assert (await bot.send_message(ALICE, "third time lucky")).text == "third time lucky"

        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(ALICE, "第一行<br>第二行", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)too long"):
            await bot.send_message(ALICE, "长" * 4097)
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(ALICE, "x", reply_markup=too_long)
        sent = await bot.send_message(ALICE, "same")
        with pytest.raises(BadRequest, match=r"(?i)not modified"):
            await bot.edit_message_text("same", chat_id=ALICE, message_id=sent.message_id)

        server.rate_limit(5)
        results = await asyncio.gather(
            *(bot.send_message(ALICE, f"burst {i}") for i in range(10)), return_exceptions=True
        )
        server.rate_limit(None)
    limited = [r for r in results if isinstance(r, RetryAfter)]
    assert len(limited) == server.stats["429"] - 1  # minus the injected one
    assert 1 <= len(limited) <= 5
    assert [c.text for c in server.messages_to(BOB)] == []
    assert server.stats["sendMessage"] == 18  # failed calls count too


async def test_offset_confirms_and_long_poll_answers_early(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        first = server.user_says(ALICE, "one")
        assert [u.update_id for u in await bot.get_updates()] == [first]
        assert [u.update_id for u in await bot.get_updates()] == [first]  # not confirmed yet
        assert await bot.get_updates(offset=first + 1) == ()
        assert server.pending_updates == 0

        async def say_later() -> None:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.user_says, ALICE, "two")

        started = time.monotonic()
        task = asyncio.create_task(say_later())
        updates = await bot.get_updates(offset=first + 1, timeout=5)
        await task
        assert time.monotonic() - started < 2
        assert [u.message.text for u in updates if u.message] == ["two"]

        two = updates[0].message
        assert two is not None
        # a redelivery of the update just received: the next offset confirms it away
        server.push_raw_update({"update_id": updates[0].update_id, "message": two.to_dict()})
        edited = server.push_raw_update(
            {"edited_message": {**two.to_dict(), "text": "two!", "edit_date": 1}}
        )
        later = await bot.get_updates(offset=updates[0].update_id + 1, limit=10)
        assert [u.update_id for u in later] == [edited]
        assert later[0].edited_message is not None
        # chat_member updates are only sent when asked for, as in Telegram
        member = {"chat": two.chat.to_dict(), "from": two.to_dict()["from"], "date": 1}
        server.push_raw_update({"chat_member": member})
        assert await bot.get_updates(offset=edited + 1) == ()
        wanted = server.push_raw_update({"chat_member": member})
        got = await bot.get_updates(offset=edited + 1, allowed_updates=["chat_member"])
        assert [u.update_id for u in got] == [wanted]


async def test_application_gets_each_update_once(server: FakeTelegram) -> None:
    app = build_app(server)
    texts: list[str] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_message.text
        texts.append(update.effective_message.text)
        await update.effective_message.reply_text("ok")

    app.add_handler(MessageHandler(filters.TEXT, record))
    async with polling(app) as errors:
        for i in range(5):
            server.user_says(ALICE, f"m{i}")
        await server.await_messages(ALICE, 5)
        await asyncio.sleep(0.1)  # a few more polls: nothing may come twice
    assert errors == []
    assert texts == [f"m{i}" for i in range(5)]
    assert server.pending_updates == 0
    assert server.stats["updates_delivered"] == 5


async def test_webhook_and_commands(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        await bot.set_webhook("https://duban.example/tg", secret_token="s3cret_-")
        assert server.webhook is not None
        assert server.webhook["url"] == "https://duban.example/tg"
        assert server.webhook["secret_token"] == "s3cret_-"
        server.user_says(ALICE, "queued")
        info = await bot.get_webhook_info()
        assert (info.url, info.pending_update_count) == ("https://duban.example/tg", 1)
        with pytest.raises(Conflict):
            await bot.get_updates()
        await bot.delete_webhook(drop_pending_updates=True)
        assert server.webhook is None
        assert server.pending_updates == 0

        default = [BotCommand("start", "开始"), BotCommand("today", "今日待办")]
        await bot.set_my_commands(default)
        await bot.set_my_commands([BotCommand("admin", "管理")], scope=BotCommandScopeChat(ALICE))
        assert [c.command for c in await bot.get_my_commands()] == ["start", "today"]
        alice = await bot.get_my_commands(scope=BotCommandScopeChat(ALICE))
        assert [c.command for c in alice] == ["admin"]
        assert server.commands_for({"type": "chat", "chat_id": ALICE})[0]["command"] == "admin"
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("导入", "中文命令不行")])
        await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()
        assert await bot.close()

    async with httpx.AsyncClient() as client:  # the raw wire format
        response = await client.post(
            f"{server.url}/bot{server.token}/SENDMESSAGE", json={"chat_id": BOB, "text": "raw"}
        )
        assert response.json()["result"]["text"] == "raw"
        missing = await client.get(f"{server.url}/bot{server.token}/nope")
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_base_faults_served_files_and_records(server: FakeTelegram) -> None:
    bot = build_app(server).bot
    async with bot:
        server.http_error_next("SENDMESSAGE", status=502)  # an HTML page from a gateway
        with pytest.raises(NetworkError):
            await bot.send_message(ALICE, "lost")
        server.delay_next("sendMessage", 0.2)
        started = time.monotonic()
        await bot.send_message(ALICE, "late")
        assert time.monotonic() - started >= 0.2
    with pytest.raises(ValueError, match="unknown Telegram endpoint"):
        server.fail_next("sendSticker")
    evidence = FilePart("document", "进展.txt", "text/plain", "已完成".encode())
    url = server.serve_file("evidence/进展.txt", evidence)
    async with httpx.AsyncClient() as client:
        got = await client.get(url)
        assert got.content == evidence.data
        assert "filename*=UTF-8''%E8%BF%9B%E5%B1%95.txt" in got.headers["content-disposition"]
        missing = await client.get(f"{server.url}/evidence/nope.txt")
        assert missing.status_code == 404 and missing.json()["error_code"] == 404
    assert [r.status for r in server.wait_for_requests("download", 2, timeout=1)] == [200, 404]
    sends = [r for r in server.requests if r.path == "sendMessage"]
    assert [r.status for r in sends] == [502, 200]
    assert sends[1].body["text"] == "late"  # the decoded parameters
    assert [c.text for c in server.messages_to(ALICE)] == ["late"]
    assert server.stats["http:502"] == 1 and server.stats["http:404"] == 1
