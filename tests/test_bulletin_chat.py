"""`/bulletin` in chat: a leader gets the progress bulletin as a Word document; bad periods are
refused in one line; officials may not ask for it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import docx
import pytest

from tests.fakes import FakeTelegram
from tests.harness import WANG, ZHANG, Dialog, running_bot


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
        yield dialog


async def test_a_leader_gets_the_bulletin_as_a_word_document(chat: Dialog) -> None:
    await chat.says_one(ZHANG, "9 60% 主体完工")
    (document,) = await chat.say(WANG, "/bulletin 2023-05")
    assert document.method == "sendDocument"
    assert "2023年5月工作进展情况通报" in (document.caption or "")
    (upload,) = document.files
    assert upload.filename == "进展情况通报-2023-05.docx"
    paragraphs = [p.text for p in docx.Document(io.BytesIO(upload.data)).paragraphs]
    assert any("通报" in p for p in paragraphs[:3])


@pytest.mark.parametrize(
    ("args", "says"),
    [("2023-13", "没有 13 月"), ("2023-Q5", "Q1 至 Q4"), ("明年", "不是月份或季度")],
)
async def test_a_bad_period_is_refused_in_one_line(chat: Dialog, args: str, says: str) -> None:
    answer = await chat.says_one(WANG, f"/bulletin {args}")
    assert says in answer


async def test_an_official_may_not_ask_for_the_bulletin(chat: Dialog) -> None:
    assert "/bulletin" in await chat.says_one(ZHANG, "/bulletin")
