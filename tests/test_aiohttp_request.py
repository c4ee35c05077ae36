"""AiohttpRequest: PTB's BaseRequest contract over real HTTP on 127.0.0.1.

Most tests drive a real ``telegram.Bot`` against the fake Bot API; the timeout, refusal,
proxy and wire-format tests use tiny aiohttp servers of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram._utils.types import ODVInput
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.channels.aiohttp_request import AiohttpRequest
from tests.fakes import FakeTelegram
from tests.ports import free_port

ALICE = 1001
BOB = 1002
TOKEN = "123456789:AAHfakeTokenForDubanTests_0123456789"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Duban", "username": "duban_bot"}
MESSAGE = {"message_id": 1, "date": 0, "chat": {"id": ALICE, "type": "private"}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_bot(base: str, **request_kwargs: Any) -> Bot:
    """A real PTB Bot whose both request objects are AiohttpRequests."""
    return Bot(
        TOKEN,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=AiohttpRequest(**request_kwargs),
        get_updates_request=AiohttpRequest(**{"connection_pool_size": 1, **request_kwargs}),
    )


@pytest.fixture
async def bot(server: FakeTelegram) -> AsyncIterator[Bot]:
    """A Bot on the fake Bot API, initialised (getMe done) and shut down afterwards."""
    assert server.token == TOKEN
    async with make_bot(server.url) as ready:
        yield ready


def ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def api_answer(request: web.Request) -> web.Response:
    """What a Bot API server answers to getMe and to the sending methods."""
    return ok(BOT_USER if request.path.lower().endswith("/getme") else MESSAGE)


@contextlib.asynccontextmanager
async def local_server(handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 that hands every request to ``handler``."""
    app = web.Application(client_max_size=2**20)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- against the fake Bot API


async def test_get_me_and_send_message_with_keyboard(bot: Bot, server: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.id == server.bot_id
    assert me.username == "duban_test_bot"

    text = "第1项 & 完成率=100% + <b>确认</b>?"
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("完成", callback_data="done:7")],
            [InlineKeyboardButton("稍后", callback_data="later:7")],
        ]
    )
    message = await bot.send_message(ALICE, text, parse_mode="HTML", reply_markup=keyboard)
    assert message.text == "第1项 & 完成率=100% + 确认?"
    (sent,) = server.messages_to(ALICE)
    assert sent.text == text
    assert sent.reply_markup == keyboard.to_dict()
    assert sent.buttons == [("完成", "done:7"), ("稍后", "later:7")]
    assert server.stats["getMe"] == 2  # initialize() and the call above


async def test_long_poll_returns_updates(bot: Bot, server: FakeTelegram) -> None:
    first = server.user_says(ALICE, "一")
    assert [u.update_id for u in await bot.get_updates()] == [first]

    async def say_later() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.user_says, BOB, "二")

    started = time.monotonic()
    task = asyncio.create_task(say_later())
    updates = await bot.get_updates(offset=first + 1, timeout=5)
    await task
    assert time.monotonic() - started < 3
    assert [u.message.text for u in updates if u.message] == ["二"]
    assert updates[0].effective_chat is not None and updates[0].effective_chat.id == BOB


async def test_long_poll_outlasts_the_default_read_timeout(server: FakeTelegram) -> None:
    # PTB adds the poll's timeout to the request's read_timeout for getUpdates.
    async with make_bot(server.url, read_timeout=0.3) as bot:
        assert bot.request.read_timeout == 0.3
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def test_uploads_arrive_with_their_bytes_and_names(bot: Bot, server: FakeTelegram) -> None:
    content = b"PK\x03\x04 fake docx \x00\xff" * 500
    message = await bot.send_document(
        ALICE, content, filename='2023年"工作要点".docx', caption="年度计划"
    )
    assert message.document is not None
    assert message.document.file_name == '2023年"工作要点".docx'
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    assert (await bot.send_photo(ALICE, png, caption="图表")).photo
    # a file handle PTB hands over unread (InputFile(read_file_handle=False))
    handle = io.BytesIO(b"handle bytes " * 100)
    handle.read(5)  # read from its start all the same, as httpx does
    await bot.send_document(BOB, InputFile(handle, filename="报告.txt", read_file_handle=False))

    document, photo = server.messages_to(ALICE)
    (upload,) = document.files
    assert (upload.filename, upload.data, upload.content_type) == (
        '2023年"工作要点".docx',
        content,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    assert document.caption == "年度计划"
    assert photo.method == "sendPhoto" and photo.files[0].data == png
    assert photo.caption == "图表"
    (from_handle,) = server.messages_to(BOB)[0].files
    assert (from_handle.filename, from_handle.data) == ("报告.txt", b"handle bytes " * 100)


async def test_downloads_a_file(bot: Bot, server: FakeTelegram) -> None:
    update_id = server.user_sends_document(BOB, "回执.txt", "已完成".encode(), caption="回执")
    (update,) = await bot.get_updates(offset=update_id)
    assert update.message is not None and update.message.document is not None
    file = await update.message.document.get_file()
    assert bytes(await file.download_as_bytearray()) == "已完成".encode()


async def test_error_answers_become_telegram_errors(bot: Bot, server: FakeTelegram) -> None:
    server.fail_next("sendMessage", 1, error_code=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ALICE, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    server.block(BOB)
    with pytest.raises(Forbidden, match=r"(?i)blocked"):
        await bot.send_message(BOB, "hi")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(ALICE, "一<br>二", parse_mode="HTML")
    assert (await bot.send_message(ALICE, "third time lucky")).text == "third time lucky"


async def test_concurrent_calls_share_a_small_pool(server: FakeTelegram) -> None:
    async with make_bot(server.url, connection_pool_size=2, pool_timeout=None) as bot:
        sent = await asyncio.gather(*(bot.send_message(ALICE, f"第{i}条") for i in range(20)))
    assert sorted(m.text or "" for m in sent) == sorted(f"第{i}条" for i in range(20))
    assert len(server.messages_to(ALICE)) == 20


# ---------------------------------------------------------------- on the wire


async def test_bodies_are_ptbs_json_and_uploads_byte_for_byte_what_httpx_sends() -> None:
    seen: list[tuple[str, str, bytes, dict[str, str]]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, await request.read(), dict(request.headers)))
        return api_answer(request)

    class Recording(AiohttpRequest):
        data: list[RequestData | None] = []  # noqa: RUF012 - one list for the test

        async def do_request(
            self,
            url: str,
            method: str,
            request_data: RequestData | None = None,
            read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
            write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
            connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
            pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        ) -> tuple[int, bytes]:
            Recording.data.append(request_data)
            return await super().do_request(
                url,
                method,
                request_data,
                read_timeout,
                write_timeout,
                connect_timeout,
                pool_timeout,
            )

    async with local_server(capture) as base:
        request = Recording()
        bot = Bot(TOKEN, base_url=f"{base}/bot", request=request, get_updates_request=Recording())
        async with bot:
            await bot.send_message(ALICE, "第1项 & 100%", reply_markup=InlineKeyboardMarkup([]))
            await bot.send_document(
                ALICE,
                "内容".encode() * 1000,
                filename='a "quoted"\\ name\r\n报告.docx',
                caption="说明 & 附件",
            )
    assert [(m, p.rsplit("/", 1)[1]) for m, p, _, _ in seen] == [
        ("POST", "getMe"),
        ("POST", "sendMessage"),
        ("POST", "sendDocument"),
    ]
    for (_, _, body, headers), data in zip(seen, Recording.data, strict=True):
        assert headers["User-Agent"] == BaseRequest.USER_AGENT
        assert "Cookie" not in headers
        assert int(headers["Content-Length"]) == len(body)
        if data is not None and data.contains_files:
            expected = httpx.Request(
                "POST",
                "http://x/",
                headers={"Content-Type": headers["Content-Type"]},
                data=data.json_parameters,
                files=data.multipart_data,
            ).read()
        else:  # plain calls: PTB's own JSON payload (none at all without parameters)
            expected = data.json_payload if data and data.json_parameters else b""
        assert body == expected, headers["Content-Type"]
    assert seen[0][2] == b""
    assert seen[1][3]["Content-Type"] == "application/json"
    sent = json.loads(seen[1][2])
    assert sent["text"] == "第1项 & 100%"
    assert isinstance(json.loads(sent["reply_markup"]), dict)  # objects travel as JSON text
    assert seen[2][3]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'filename="a %22quoted%22\\\\ name%0D%0A\xe6\x8a\xa5\xe5\x91\x8a.docx"' in seen[2][2]


async def test_large_upload_is_sent_whole(bot: Bot, server: FakeTelegram) -> None:
    content = bytes(range(256)) * 8192  # 2 MiB: written in chunks rather than one raw write
    await bot.send_document(ALICE, content, filename="big.bin")
    (upload,) = server.messages_to(ALICE)[0].files
    assert upload.data == content


async def test_redirects_are_not_followed_and_statuses_pass_through() -> None:
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"}, text="moved")

    async with local_server(redirect) as base, AiohttpRequest() as request:
        code, body = await request.do_request(f"{base}/bot{TOKEN}/getMe", "POST")
        assert (code, body) == (302, b"moved")
        with pytest.raises(NetworkError, match=r"Found \(302\)"):
            await request.post(f"{base}/bot{TOKEN}/getMe")


# ---------------------------------------------------------------- timeouts and failures


async def test_read_timeout_gives_timed_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return api_answer(request)

    async with local_server(slow) as base:
        url = f"{base}/bot{TOKEN}/getMe"
        async with AiohttpRequest(read_timeout=0.1) as request:
            started = time.monotonic()
            with pytest.raises(TimedOut):
                await request.do_request(url, "POST")
            assert time.monotonic() - started < 0.5
            # an explicit per-call read timeout replaces the default
            code, _ = await request.do_request(url, "POST", read_timeout=2)
            assert code == 200
        async with AiohttpRequest() as request:
            with pytest.raises(TimedOut):
                await request.do_request(url, "POST", read_timeout=0.1)
        # through a Bot, as PTB raises it
        bot = make_bot(base)
        async with bot:
            with pytest.raises(TimedOut):
                await bot.send_message(ALICE, "hi", read_timeout=0.1)


async def test_pool_timeout_when_every_connection_is_busy() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return api_answer(request)

    async with local_server(slow) as base:
        url = f"{base}/bot{TOKEN}/getMe"
        async with AiohttpRequest(connection_pool_size=1, pool_timeout=0.1) as request:
            busy = asyncio.create_task(request.do_request(url, "POST"))
            await asyncio.sleep(0.05)
            with pytest.raises(TimedOut, match="Pool timeout"):
                await request.do_request(url, "POST")
            assert (await busy)[0] == 200
            # waiting long enough for the connection is fine
            busy = asyncio.create_task(request.do_request(url, "POST"))
            await asyncio.sleep(0.05)
            assert (await request.do_request(url, "POST", pool_timeout=3))[0] == 200
            assert (await busy)[0] == 200


async def test_connection_refused_gives_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/bot{TOKEN}/getMe"
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError, match=r"^aiohttp\.ClientConnectorError: ") as caught:
            await request.do_request(url, "POST")
        assert not isinstance(caught.value, TimedOut)
    bot = Bot(
        TOKEN,
        base_url=url.removesuffix(f"{TOKEN}/getMe"),
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(),
    )
    with pytest.raises(NetworkError, match="ClientConnectorError"):
        await bot.initialize()
    await bot.shutdown()


async def test_server_closing_mid_answer_gives_network_error() -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"ok": tr')
        assert request.transport is not None
        request.transport.close()
        return response

    async with local_server(hang_up) as base, AiohttpRequest() as request:
        with pytest.raises(NetworkError, match=r"^aiohttp\.") as caught:
            await request.do_request(f"{base}/bot{TOKEN}/getMe", "POST")
        assert not isinstance(caught.value, TimedOut)


# ---------------------------------------------------------------- life cycle


async def test_shutdown_twice_and_use_after_shutdown(server: FakeTelegram) -> None:
    url = f"{server.url}/bot{TOKEN}/getMe"
    request = AiohttpRequest()
    await request.shutdown()  # never initialised: fine
    await request.initialize()
    await request.initialize()  # idempotent
    assert (await request.do_request(url, "POST"))[0] == 200
    await request.shutdown()
    await request.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(url, "POST")
    # PTB's post() wraps anything that is not a TelegramError into NetworkError
    with pytest.raises(NetworkError, match="RuntimeError"):
        await request.post(url)
    await request.initialize()  # usable again, like HTTPXRequest
    assert json.loads((await request.do_request(url, "POST"))[1])["ok"] is True
    await request.shutdown()


async def test_works_without_initialize(server: FakeTelegram) -> None:
    request = AiohttpRequest()
    try:
        result = await request.post(f"{server.url}/bot{TOKEN}/getMe")
        assert isinstance(result, dict) and result["id"] == server.bot_id
    finally:
        await request.shutdown()


async def test_bot_context_manager_closes_its_sessions(server: FakeTelegram) -> None:
    bot = make_bot(server.url)
    async with bot:
        await bot.send_message(ALICE, "hi")
    for request in (bot.request, bot._request[0]):
        with pytest.raises(RuntimeError):
            await request.do_request(f"{server.url}/bot{TOKEN}/getMe", "POST")


def test_constructor_defaults_and_checks() -> None:
    request = AiohttpRequest()
    assert request.read_timeout == 5.0
    assert request.connection_pool_size == 8
    assert AiohttpRequest(read_timeout=None).read_timeout is None
    with pytest.raises(ValueError, match=r"(?i)socks"):
        AiohttpRequest(proxy="socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)


# ---------------------------------------------------------------- proxies


async def test_proxy_from_the_environment(
    server: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    async def proxy(request: web.Request) -> web.Response:
        asked.append((request.headers["Host"], request.raw_path))
        return api_answer(request)

    async with local_server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "localhost, .example.invalid")
        async with AiohttpRequest() as request:
            code, _ = await request.do_request(
                f"http://api.telegram.invalid/bot{TOKEN}/getMe", "POST"
            )
            assert code == 200
            assert asked == [
                ("api.telegram.invalid", f"http://api.telegram.invalid/bot{TOKEN}/getMe")
            ]
            # NO_PROXY hosts go direct (a dead port proves it)
            with pytest.raises(NetworkError, match="ClientConnectorError"):
                await request.do_request(f"http://localhost:{free_port()}/x", "POST")
            with pytest.raises(NetworkError):  # DNS fails (or times out): not proxied
                await request.do_request(
                    f"http://api.example.invalid:{free_port()}/x", "GET", connect_timeout=1
                )
        assert len(asked) == 1

        # trust_env=False ignores the environment
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        monkeypatch.delenv("NO_PROXY")
        async with AiohttpRequest(trust_env=False) as request:
            assert (await request.do_request(f"{server.url}/bot{TOKEN}/getMe", "POST"))[0] == 200
        # an explicit proxy is used for everything
        async with AiohttpRequest(proxy=proxy_url) as request:
            code, _ = await request.do_request(f"http://elsewhere.invalid/bot{TOKEN}/getMe", "POST")
            assert code == 200
        assert asked[-1][0] == "elsewhere.invalid"
