"""The fake Feishu itself: tokens, the custom bot's signature check, message dedupe by uuid,
the long connection's endpoint and handshake refusing what Feishu refuses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.fakes.feishu_api import FakeFeishu, sign

USER = "ou_" + "c" * 32


@pytest.fixture
def feishu() -> Iterator[FakeFeishu]:
    with FakeFeishu() as fake:
        yield fake
        assert fake.internal_errors == []


def _token(fake: FakeFeishu, secret: str | None = None) -> dict[str, object]:
    body = {"app_id": fake.app_id, "app_secret": secret or fake.app_secret}
    answer: dict[str, object] = httpx.post(
        f"{fake.url}/open-apis/auth/v3/tenant_access_token/internal", json=body
    ).json()
    return answer


def test_the_same_token_is_handed_out_until_its_last_half_hour(feishu: FakeFeishu) -> None:
    first, second = _token(feishu), _token(feishu)
    assert first["code"] == 0 and first["tenant_access_token"] == second["tenant_access_token"]
    assert _token(feishu, "wrong-secret")["code"] == 10014
    feishu.token_ttl = 1000  # under 30 minutes: each fetch is a new one
    feishu.expire_tokens()
    assert _token(feishu)["tenant_access_token"] != _token(feishu)["tenant_access_token"]


def test_messages_need_a_valid_token_and_are_sent_once_per_uuid(feishu: FakeFeishu) -> None:
    url = f"{feishu.url}/open-apis/im/v1/messages"
    body = {"receive_id": USER, "msg_type": "text", "content": json.dumps({"text": "hi"})}
    params = {"receive_id_type": "open_id"}
    missing = httpx.post(url, params=params, json=body)
    assert (missing.status_code, missing.json()["code"]) == (400, 99991661)
    headers = {"Authorization": f"Bearer {_token(feishu)['tenant_access_token']}"}
    once = {**body, "uuid": "u-1"}
    first = httpx.post(url, params=params, json=once, headers=headers).json()
    again = httpx.post(url, params=params, json=once, headers=headers).json()
    assert first["data"]["message_id"] == again["data"]["message_id"]
    assert [m.text for m in feishu.messages_to(USER)] == ["hi"]
    too_long = {**body, "content": json.dumps({"text": "长" * 60_000})}
    assert httpx.post(url, params=params, json=too_long, headers=headers).json()["code"] == 230025


def test_the_custom_bot_checks_its_signature(feishu: FakeFeishu) -> None:
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "周报"}]}}
    body = {"msg_type": "interactive", "card": card}
    now = str(int(time.time()))
    good = {**body, "timestamp": now, "sign": sign(now, feishu.group_secret or "")}
    assert httpx.post(feishu.hook_url, json=good).json()["code"] == 0
    wrong = {**body, "timestamp": now, "sign": sign(now, "another-secret")}
    old = str(int(time.time()) - 3700)
    stale = {**body, "timestamp": old, "sign": sign(old, feishu.group_secret or "")}
    for refused in (body, wrong, stale):
        answer = httpx.post(feishu.hook_url, json=refused)
        assert (answer.status_code, answer.json()["code"]) == (200, 19021)
    other = httpx.post(f"{feishu.url}/open-apis/bot/v2/hook/another-token", json=good)
    assert other.json()["code"] == 19001
    assert [m.text for m in feishu.group_messages] == ["周报"]


def test_the_long_connection_takes_only_what_the_endpoint_handed_out(feishu: FakeFeishu) -> None:
    endpoint = f"{feishu.url}/callback/ws/endpoint"
    refused = httpx.post(endpoint, json={"AppID": feishu.app_id, "AppSecret": "wrong"}).json()
    assert refused["code"] == 514
    answer = httpx.post(endpoint, json={"AppID": feishu.app_id, "AppSecret": feishu.app_secret})
    data = answer.json()["data"]
    assert set(data["ClientConfig"]) == {
        "ReconnectCount",
        "ReconnectInterval",
        "ReconnectNonce",
        "PingInterval",
    }
    with pytest.raises(InvalidStatus) as forbidden:
        connect(f"{feishu.ws_url}/ws/v2?ticket=made-up").close()
    assert forbidden.value.response.status_code == 403
    assert forbidden.value.response.headers["handshake-status"] == "403"
    with connect(data["URL"]):
        feishu.wait_connected()
    with pytest.raises(InvalidStatus):  # a ticket is used once
        connect(data["URL"]).close()
