"""The fake DingTalk itself: it refuses what DingTalk refuses (signatures, stale or unknown
tokens, tickets), and its stream records the acks a client sends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.fakes.dingtalk_api import QPS_LIMIT, FakeDingTalk


@pytest.fixture(scope="module")
def _shared() -> Iterator[FakeDingTalk]:
    with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
def dt(_shared: FakeDingTalk) -> Iterator[FakeDingTalk]:
    _shared.reset(keep_tokens=False)
    _shared.clear_faults()
    yield _shared
    assert _shared.internal_errors == []


def _signed(fake: FakeDingTalk, stamp: str, secret: str | None = None) -> dict[str, str]:
    key = (secret or fake.group_secret or "").encode()
    digest = hmac.new(key, f"{stamp}\n{secret or fake.group_secret}".encode(), hashlib.sha256)
    return {
        "access_token": fake.group_token,
        "timestamp": stamp,
        "sign": base64.b64encode(digest.digest()).decode(),
    }


MARKDOWN = {"msgtype": "markdown", "markdown": {"title": "周报", "text": "### 周报\n- 9 项"}}


def test_the_group_robot_checks_the_token_the_signature_and_the_timestamp(
    dt: FakeDingTalk,
) -> None:
    url = f"{dt.url}/robot/send"
    now = str(int(time.time() * 1000))
    stale = str(int((time.time() - 2 * 3600) * 1000))
    ok = httpx.post(url, params=_signed(dt, now), json=MARKDOWN).json()
    wrong_secret = httpx.post(url, params=_signed(dt, now, "SECwrong"), json=MARKDOWN).json()
    old = httpx.post(url, params=_signed(dt, stale), json=MARKDOWN).json()
    no_token = httpx.post(url, params={**_signed(dt, now), "access_token": "x"}, json=MARKDOWN)
    assert ok == {"errcode": 0, "errmsg": "ok"}
    assert wrong_secret == {"errcode": 310000, "errmsg": "sign not match"}
    assert old == {"errcode": 310000, "errmsg": "invalid timestamp"}
    assert no_token.status_code == 200 and no_token.json()["errcode"] == 300001
    assert [m.title for m in dt.group_messages] == ["周报"]


def test_the_group_robot_allows_20_messages_a_minute(dt: FakeDingTalk) -> None:
    url = f"{dt.url}/robot/send"
    answers = [
        httpx.post(url, params=_signed(dt, str(int(time.time() * 1000))), json=MARKDOWN).json()
        for _ in range(21)
    ]
    assert [a["errcode"] for a in answers] == [0] * 20 + [130101]


def test_tokens_expire_and_a_new_one_is_issued(dt: FakeDingTalk) -> None:
    credentials = {"appKey": dt.client_id, "appSecret": dt.client_secret}
    first = httpx.post(f"{dt.url}/v1.0/oauth2/accessToken", json=credentials).json()
    again = httpx.post(f"{dt.url}/v1.0/oauth2/accessToken", json=credentials).json()
    assert first["accessToken"] == again["accessToken"] and first["expireIn"] > 7000
    body = {"robotCode": dt.robot_code, "userIds": ["u1"], "msgKey": "sampleText"}
    body["msgParam"] = json.dumps({"content": "你好"})
    send = f"{dt.url}/v1.0/robot/oToMessages/batchSend"
    headers = {"x-acs-dingtalk-access-token": first["accessToken"]}
    assert httpx.post(send, json=body, headers=headers).status_code == 200
    dt.expire_tokens()
    expired = httpx.post(send, json=body, headers=headers)
    assert expired.status_code == 401 and expired.json()["code"] == "InvalidAuthentication"
    upload = httpx.post(
        f"{dt.url}/media/upload",
        params={"access_token": first["accessToken"], "type": "file"},
        files={"media": ("a.txt", b"hello", "text/plain")},
    )
    assert upload.json()["errcode"] == 42001
    renewed = httpx.post(f"{dt.url}/v1.0/oauth2/accessToken", json=credentials).json()
    assert renewed["accessToken"] != first["accessToken"] and dt.tokens_issued == 2
    wrong = httpx.post(
        f"{dt.url}/v1.0/oauth2/accessToken", json={**credentials, "appSecret": "nope"}
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalidClientIdOrSecret"
    assert [m.text for m in dt.messages_to("u1")] == ["你好"]


def test_faults_answer_the_qps_limit(dt: FakeDingTalk) -> None:
    dt.fail_next("robot/oToMessages/batchSend")
    answer = httpx.post(f"{dt.url}/v1.0/robot/oToMessages/batchSend", json={})
    assert answer.status_code == 403 and answer.json()["code"] == QPS_LIMIT


async def test_frames_are_pushed_and_acks_recorded(dt: FakeDingTalk) -> None:
    async with httpx.AsyncClient() as client:
        opened = await client.post(
            f"{dt.url}/v1.0/gateway/connections/open",
            json={
                "clientId": dt.client_id,
                "clientSecret": dt.client_secret,
                "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}],
            },
        )
        refused = await client.post(
            f"{dt.url}/v1.0/gateway/connections/open",
            json={"clientId": dt.client_id, "clientSecret": "wrong", "subscriptions": []},
        )
    assert refused.status_code == 401
    endpoint, ticket = opened.json()["endpoint"], opened.json()["ticket"]
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"{endpoint}?ticket=forged"):
            pass
    pushed = dt.user_says("zhangsan01", "你好")  # before the connection: kept for it
    async with websockets.connect(f"{endpoint}?ticket={ticket}") as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["type"] == "CALLBACK" and frame["headers"]["messageId"] == pushed.message_id
        data = json.loads(frame["data"])
        assert data["senderStaffId"] == "zhangsan01" and data["text"]["content"] == "你好"
        assert data["msgId"] == pushed.msg_id and data["conversationType"] == "1"
        ack = {"code": 200, "headers": {"messageId": pushed.message_id}, "message": "OK"}
        await ws.send(json.dumps(ack))
        got = await dt.await_ack(pushed.message_id)
        assert got.code == 200
        dt.redeliver(pushed.message_id)
        again = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert again["headers"]["messageId"] == pushed.message_id
    with pytest.raises(websockets.exceptions.InvalidStatus):  # a ticket opens one connection
        async with websockets.connect(f"{endpoint}?ticket={ticket}"):
            pass
