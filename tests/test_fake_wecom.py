"""The fake WeCom API, driven by the real wechatpy 1.8 enterprise WeChatClient and httpx."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import APILimitedException, WeChatClientException

from tests.fakes import FilePart
from tests.fakes.wecom_api import CONTENT_TOO_LONG, FakeWeCom

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


class FakeClient(WeChatClient):
    """wechatpy's client with the token fetch pointed at the fake (it hard-codes the host)."""

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        return result


def make_client(
    fake: FakeWeCom, *, secret: str | None = None, corp_id: str | None = None, **kwargs: Any
) -> FakeClient:
    client = FakeClient(corp_id or fake.corp_id, secret or fake.secret, timeout=5, **kwargs)
    client.API_BASE_URL = fake.api_base
    return client


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


@pytest.fixture
def fake(shared: FakeWeCom) -> Iterator[FakeWeCom]:
    """The module's server, reset (tokens included) for each test."""
    shared.reset(keep_tokens=False)
    yield shared
    assert shared.internal_errors == []


@pytest.fixture
def client(fake: FakeWeCom) -> FakeClient:
    return make_client(fake)


def test_gettoken_issues_and_reuses_a_token(fake: FakeWeCom, client: FakeClient) -> None:
    token = client.access_token
    assert token == fake.current_token
    assert client.access_token == token  # cached by wechatpy: no second call
    assert fake.stats["gettoken"] == 1
    assert fake.requests[0].query == {"corpid": fake.corp_id, "corpsecret": fake.secret}
    # a second client asking while the token is valid gets the same one, as from WeCom
    assert make_client(fake).access_token == token
    assert fake.tokens_issued == 1
    assert fake.stats["gettoken"] == 2


def test_wrong_credentials_are_refused(fake: FakeWeCom) -> None:
    with pytest.raises(WeChatClientException) as wrong_secret:
        make_client(fake, secret="nope").fetch_access_token()
    assert wrong_secret.value.errcode == 40001
    assert wrong_secret.value.errmsg == "invalid credential"
    with pytest.raises(WeChatClientException) as wrong_corp:
        make_client(fake, corp_id="ww-other").fetch_access_token()
    assert wrong_corp.value.errcode == 40013
    assert fake.tokens_issued == 0
    assert fake.stats["40001"] == 1 and fake.stats["40013"] == 1


def test_send_text_is_recorded(fake: FakeWeCom, client: FakeClient) -> None:
    result = client.message.send_text(fake.agent_id, ["alice", "bob"], "你好，请填报进展")
    assert result["errcode"] == 0
    assert result["invaliduser"] == ""
    (sent,) = fake.sent
    assert result["msgid"] == sent.msgid
    assert sent.touser == ["alice", "bob"]
    assert sent.msgtype == "text"
    assert sent.agentid == fake.agent_id
    assert sent.content == sent.text == "你好，请填报进展"
    # what wechatpy puts on the wire: '|'-joined users, empty toparty/totag, safe=0
    assert sent.raw == {
        "touser": "alice|bob",
        "toparty": "",
        "totag": "",
        "agentid": fake.agent_id,
        "msgtype": "text",
        "text": {"content": "你好，请填报进展"},
        "safe": 0,
    }
    assert fake.messages_to("bob") == [sent]
    assert fake.wait_for_messages("alice", 1, timeout=0.1) == [sent]
    assert fake.stats["message/send"] == 1
    assert fake.stats["to:alice"] == 1


def test_markdown_and_unknown_members(fake: FakeWeCom, client: FakeClient) -> None:
    fake.members = frozenset({"alice"})
    try:
        result = client.message.send_markdown(fake.agent_id, "alice|ghost", "**第7项** 已到期")
        assert result["invaliduser"] == "ghost"
        (sent,) = fake.sent
        assert sent.msgtype == "markdown"
        assert sent.content == "**第7项** 已到期"
        assert sent.delivered_to == ["alice"]
        assert fake.messages_to("ghost") == []
        with pytest.raises(WeChatClientException) as nobody:
            client.message.send_text(fake.agent_id, "ghost", "hi")
        assert nobody.value.errcode == 81013
    finally:
        fake.members = None


def test_content_over_2048_bytes_is_refused(fake: FakeWeCom, client: FakeClient) -> None:
    fits = "进" * 682 + "ab"  # 2048 bytes
    client.message.send_text(fake.agent_id, "alice", fits)
    client.message.send_markdown(fake.agent_id, "alice", fits)
    for send in (client.message.send_text, client.message.send_markdown):
        with pytest.raises(WeChatClientException) as too_long:
            send(fake.agent_id, "alice", fits + "c")
        assert too_long.value.errcode == CONTENT_TOO_LONG == 45002
    with pytest.raises(WeChatClientException) as empty:
        client.message.send_text(fake.agent_id, "alice", "")
    assert empty.value.errcode == 44004
    assert [m.content for m in fake.messages_to("alice")] == [fits, fits]


def test_media_upload_then_file_and_image_messages(fake: FakeWeCom, client: FakeClient) -> None:
    data = "进展表\n".encode() * 100
    uploaded = client.media.upload("file", ("进展.txt", io.BytesIO(data)))
    assert uploaded["errcode"] == 0 and uploaded["type"] == "file"
    assert isinstance(uploaded["created_at"], str)
    (upload,) = fake.uploads
    assert (upload.filename, upload.size, upload.type) == ("进展.txt", len(data), "file")
    assert upload.data == data and upload.media_id == uploaded["media_id"]
    client.message.send_file(fake.agent_id, "alice", uploaded["media_id"])
    (sent,) = fake.messages_to("alice")
    assert (sent.msgtype, sent.media_id, sent.content) == ("file", upload.media_id, None)

    picture = client.media.upload("image", ("chart.png", PNG))["media_id"]
    client.message.send_image(fake.agent_id, "alice", picture)
    assert fake.messages_to("alice")[-1].media_id == picture
    with pytest.raises(WeChatClientException) as not_image:
        client.message.send_image(fake.agent_id, "alice", upload.media_id)
    assert not_image.value.errcode == 40007
    with pytest.raises(WeChatClientException) as unknown:
        client.message.send_file(fake.agent_id, "alice", "no-such-media")
    assert unknown.value.errcode == 40007
    with pytest.raises(WeChatClientException) as bad_picture:
        client.media.upload("image", ("notes.txt", b"plain text"))
    assert bad_picture.value.errcode == 40005
    with pytest.raises(WeChatClientException) as empty:
        client.media.upload("file", ("empty.txt", b""))
    assert empty.value.errcode == 44001
    with pytest.raises(WeChatClientException) as bad_type:
        client.media.upload("doc", ("a.doc", data))
    assert bad_type.value.errcode == 40004


def card(task_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": "第7项进展？", "desc": "截止 6 月 30 日"},
        "task_id": task_id,
        "button_list": [
            {"text": "完成", "style": 1, "key": "done:7"},
            {"text": "延期", "style": 2, "key": "later:7"},
        ],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def send_card(client: FakeClient, fake: FakeWeCom, template_card: dict[str, Any]) -> Any:
    data = {
        "touser": "alice",
        "msgtype": "template_card",
        "agentid": fake.agent_id,
        "template_card": template_card,
    }
    return client.post("message/send", data=data)


def test_template_card_is_validated(fake: FakeWeCom, client: FakeClient) -> None:
    result = send_card(client, fake, card("duban-1"))
    assert result["response_code"]
    (sent,) = fake.messages_to("alice")
    assert sent.buttons == [("完成", "done:7"), ("延期", "later:7")]
    assert sent.content == "第7项进展？\n截止 6 月 30 日"
    assert sent.card is not None and sent.card["task_id"] == "duban-1"
    bad = [
        card("duban-1"),  # task_id used already
        {k: v for k, v in card("duban-2").items() if k != "task_id"},
        card("duban-3", button_list=[]),
        card("duban-4", button_list=[{"text": "完成"}]),
        card("duban-5", button_list=[{"text": str(i), "key": str(i)} for i in range(7)]),
        card("duban-6", main_title=None),
        card("duban 7"),
        card("duban-8", card_type="buttons"),
    ]
    for template_card in bad:
        with pytest.raises(WeChatClientException) as refused:
            send_card(client, fake, template_card)
        assert refused.value.errcode == 40058, template_card
        assert "invalid Request Parameter" in refused.value.errmsg
    assert len(fake.sent) == 1


def test_group_robot(fake: FakeWeCom) -> None:
    markdown = {"msgtype": "markdown", "markdown": {"content": "## 本周督办\n> 3 项逾期"}}
    with httpx.Client() as http:
        ok = http.post(fake.webhook_url, json=markdown).json()
        wrong = http.post(f"{fake.api_base}webhook/send?key=other", json=markdown).json()
        huge = {"msgtype": "markdown", "markdown": {"content": "进" * 1366}}  # 4098 bytes
        too_long = http.post(fake.webhook_url, json=huge).json()
        image = base64.b64encode(PNG).decode()
        picture = {
            "msgtype": "image",
            "image": {"base64": image, "md5": hashlib.md5(PNG).hexdigest()},
        }
        assert http.post(fake.webhook_url, json=picture).json()["errcode"] == 0
    assert ok == {"errcode": 0, "errmsg": "ok"}
    assert wrong["errcode"] == 93000
    assert too_long["errcode"] == 40058
    assert too_long["errmsg"].startswith("markdown.content exceed max length 4096")
    first, second = fake.wait_for_group_messages(2, timeout=0.1)
    assert (first.msgtype, first.content) == ("markdown", "## 本周督办\n> 3 项逾期")
    assert second.msgtype == "image"
    assert fake.stats["webhook/send"] == 4


def test_expired_token_is_refetched_by_wechatpy(fake: FakeWeCom, client: FakeClient) -> None:
    client.message.send_text(fake.agent_id, "alice", "one")
    old = fake.current_token
    fake.expire_tokens()
    client.message.send_text(fake.agent_id, "alice", "two")  # 42001, refetch, retry
    assert fake.tokens_issued == 2
    assert fake.stats["42001"] == 1
    sends = [r for r in fake.requests if r.path == "message/send"]
    assert [r.errcode for r in sends] == [0, 42001, 0]
    assert sends[1].query["access_token"] == old
    assert sends[2].query["access_token"] == fake.current_token != old
    assert [m.content for m in fake.messages_to("alice")] == ["one", "two"]


def test_injected_42001_refetches_but_gets_the_same_token(
    fake: FakeWeCom, client: FakeClient
) -> None:
    client.message.send_text(fake.agent_id, "alice", "one")
    fake.fail_next("message/send", errcode=42001)
    client.message.send_text(fake.agent_id, "alice", "two")
    # wechatpy refetched (a second gettoken) but WeCom hands out the still-valid token
    assert fake.stats["gettoken"] == 2
    assert fake.tokens_issued == 1
    assert len(fake.messages_to("alice")) == 2


def test_upload_retry_after_expiry_resends_an_exhausted_file(
    fake: FakeWeCom, client: FakeClient
) -> None:
    client.access_token  # noqa: B018 - fetch the token first
    fake.expire_tokens()
    # wechatpy retries with the same `files`: the file object was read by the first attempt
    with pytest.raises(WeChatClientException) as empty:
        client.media.upload("file", ("a.txt", io.BytesIO(b"hello world")))
    assert empty.value.errcode == 44001
    fake.expire_tokens()
    client.media.upload("file", ("a.txt", b"hello world"))  # bytes survive the retry
    assert [u.size for u in fake.uploads] == [11]


def test_always_fail_answers_consistently(fake: FakeWeCom) -> None:
    client = make_client(fake, auto_retry=False)  # with auto_retry wechatpy would recurse
    fake.always_fail("/cgi-bin/message/send", 42001)
    for _ in range(3):
        with pytest.raises(WeChatClientException) as expired:
            client.message.send_text(fake.agent_id, "alice", "hi")
        assert (expired.value.errcode, expired.value.errmsg) == (42001, "access_token expired")
    fake.clear_faults()
    client.message.send_text(fake.agent_id, "alice", "hi")
    assert fake.stats["42001"] == 3
    assert len(fake.sent) == 1


def test_45009_raises_api_limited(fake: FakeWeCom, client: FakeClient) -> None:
    fake.fail_next("message/send", count=2)
    for _ in range(2):
        with pytest.raises(APILimitedException) as limited:
            client.message.send_text(fake.agent_id, "alice", "hi")
        assert limited.value.errcode == 45009
    client.message.send_text(fake.agent_id, "alice", "hi")
    assert fake.stats["45009"] == 2
    fake.fail_next("gettoken", errcode=-1)
    with pytest.raises(WeChatClientException) as busy:
        make_client(fake).fetch_access_token()
    assert busy.value.errcode == -1


def test_http_errors_surface_without_errcode(fake: FakeWeCom, client: FakeClient) -> None:
    fake.http_error_next("gettoken", status=503)
    with pytest.raises(WeChatClientException) as token_failure:
        client.fetch_access_token()
    assert token_failure.value.errcode is None
    assert token_failure.value.response.status_code == 503
    fake.http_error_next("message/send", status=502, count=1)
    with pytest.raises(WeChatClientException) as send_failure:
        client.message.send_text(fake.agent_id, "alice", "hi")
    assert send_failure.value.errcode is None
    assert send_failure.value.response.status_code == 502
    client.message.send_text(fake.agent_id, "alice", "hi")
    assert fake.stats["http:503"] == 1 and fake.stats["http:502"] == 1
    assert len(fake.sent) == 1


def test_bad_requests(fake: FakeWeCom, client: FakeClient) -> None:
    token = client.access_token
    with httpx.Client(base_url=fake.api_base) as http:
        assert http.get("message/send", params={"access_token": token}).json()["errcode"] == 43002
        bad_json = http.post("message/send", params={"access_token": token}, content=b"{")
        assert bad_json.json()["errcode"] == 47001
        unknown = http.post("message/send", params={"access_token": "forged"}, json={})
        assert unknown.json()["errcode"] == 40014
        assert http.post("message/send", json={}).json()["errcode"] == 41001
        assert http.get("user/get").status_code == 404
    with pytest.raises(WeChatClientException) as wrong_agent:
        client.message.send_text(1, "alice", "hi")
    assert wrong_agent.value.errcode == 40056
    with pytest.raises(WeChatClientException) as wrong_type:
        client.message.send(fake.agent_id, "alice", msg={"msgtype": "sticker"})
    assert wrong_type.value.errcode == 40008
    with pytest.raises(ValueError, match="unknown WeCom endpoint"):
        fake.fail_next("message/sned")


def test_member_rate_limit(fake: FakeWeCom, client: FakeClient) -> None:
    fake.rate_limit_per_member(2, window=0.3)
    for _ in range(2):
        client.message.send_text(fake.agent_id, "alice", "hi")
    with pytest.raises(WeChatClientException) as limited:
        client.message.send_text(fake.agent_id, "alice", "hi")
    assert limited.value.errcode == 45033
    client.message.send_text(fake.agent_id, "bob", "hi")  # other members are not affected
    assert fake.sent_in_window("alice") == 2
    time.sleep(0.3)
    client.message.send_text(fake.agent_id, "alice", "hi")

    fake.rate_limit_per_member(1, silent=True)
    client.message.send_text(fake.agent_id, "carol", "first")
    result = client.message.send_text(fake.agent_id, "carol|dave", "second")
    assert result["errcode"] == 0  # WeCom answers ok and drops it for carol
    assert [m.content for m in fake.messages_to("carol")] == ["first"]
    assert [m.content for m in fake.messages_to("dave")] == ["second"]
    assert [(user, m.content) for user, m in fake.dropped] == [("carol", "second")]
    assert fake.stats["dropped"] == 1
    assert fake.stats["to:carol"] == 2
    assert fake.stats["member_minute_peak"] == 2


async def test_await_messages_from_a_worker_thread(fake: FakeWeCom, client: FakeClient) -> None:
    fake.latency(0.05)

    def later() -> None:
        time.sleep(0.05)
        client.message.send_text(fake.agent_id, "alice", "one")
        client.message.send_text(fake.agent_id, "alice", "two")

    worker = threading.Thread(target=later)
    started = time.monotonic()
    worker.start()
    got = await fake.await_messages("alice", 2, timeout=3)
    assert [m.content for m in got] == ["one", "two"]
    assert time.monotonic() - started >= 0.05 * 4  # gettoken + 2 sends, each delayed
    await fake.await_until(lambda f: f.stats["message/send"] == 2)
    worker.join()
    with pytest.raises(TimeoutError):
        await fake.await_messages("alice", 3, timeout=0.05)
    fake.latency(0)


async def test_answers_are_fast(fake: FakeWeCom) -> None:
    client = make_client(fake)
    await asyncio.to_thread(lambda: client.access_token)
    started = time.monotonic()
    for _ in range(20):
        await asyncio.to_thread(client.message.send_text, fake.agent_id, "alice", "hi")
    assert (time.monotonic() - started) / 20 < 0.03  # no 40 ms Nagle/delayed-ACK stall


def test_delays_records_and_served_files(fake: FakeWeCom, client: FakeClient) -> None:
    client.access_token  # noqa: B018 - fetch the token first
    fake.delay_next("/cgi-bin/message/send", 0.2)
    started = time.monotonic()
    client.message.send_text(fake.agent_id, "alice", "late")
    assert time.monotonic() - started >= 0.2
    (send,) = fake.wait_for_requests("message/send", 1, timeout=1)
    assert (send.errcode, send.status) == (0, 200)
    assert send.body["text"] == {"content": "late"}
    url = fake.serve_file("/media/chart.png", FilePart("media", "chart.png", "image/png", PNG))
    with httpx.Client() as http:
        got = http.get(url)
        assert (got.content, got.headers["content-type"]) == (PNG, "image/png")
        assert http.get(f"{fake.url}/media/other.png").status_code == 404
    assert fake.stats["download"] == 2 and fake.stats["http:404"] == 1
    fake.reset()
    with httpx.Client() as http:
        assert http.get(url).status_code == 404  # reset forgets served files
