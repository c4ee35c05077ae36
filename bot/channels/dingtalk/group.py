"""The leaders' group robot (群自定义机器人): send-only markdown through its webhook.

`{oapi}/robot/send?access_token=...`, signed (加签) when DINGTALK_GROUP_SECRET is set:
`timestamp` (ms) and `sign` = base64 HMAC-SHA256 over f"{timestamp}\\n{secret}" keyed with the
secret, which DingTalk accepts within an hour of the timestamp. A robot sends at most 20
messages a minute (DingTalk answers 130101 past that, and may mute it for ten minutes): the
robot keeps under that itself, and waits a minute and tries again if told anyway. A long digest
is split on line boundaries well under the 20000-byte body DingTalk takes (460101 past it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from bot.channels.dingtalk.api import WindowPacer
from bot.channels.dingtalk.text import dingtalk_markdown, markdown_title
from bot.events import split_text, utf8_size

log = logging.getLogger(__name__)

MAX_MARKDOWN_BYTES = 18_000  # of the text; DingTalk refuses a body over 20000 bytes
PER_MINUTE = 20
TOO_FAST = 130101
TOO_FAST_WAIT = 60.0


class GroupRobotError(Exception):
    """The robot webhook refused a message (its errcode; never the token or the URL)."""


def sign(secret: str, timestamp: str) -> str:
    """DingTalk's 加签: base64 HMAC-SHA256 of "timestamp\\nsecret" keyed with the secret."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


class GroupRobot:
    """Posts markdown to a DingTalk group robot, within its 20 messages a minute."""

    def __init__(
        self,
        oapi_base: str,
        access_token: str,
        secret: str | None,
        *,
        timeout: float = 10.0,
        now: Callable[[], float] = time.time,
        too_fast_wait: float = TOO_FAST_WAIT,
    ) -> None:
        self.url = f"{oapi_base.rstrip('/')}/robot/send"
        self._token = access_token
        self._secret = secret
        self._timeout = timeout
        self._now = now
        self._too_fast_wait = too_fast_wait
        self._pacer = WindowPacer(PER_MINUTE)

    def __repr__(self) -> str:
        return f"GroupRobot(url={self.url!r})"

    def _params(self) -> dict[str, str]:
        params = {"access_token": self._token}
        if self._secret:
            timestamp = str(int(self._now() * 1000))
            params["timestamp"] = timestamp
            params["sign"] = sign(self._secret, timestamp)
        return params

    async def send_markdown(self, text: str) -> int:
        """Send text as markdown, split on line boundaries; returns the number of messages."""
        chunks = split_text(text, MAX_MARKDOWN_BYTES, size=utf8_size)
        title = markdown_title(text)
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            for chunk in chunks:
                body = {
                    "msgtype": "markdown",
                    "markdown": {"title": title, "text": dingtalk_markdown(chunk)},
                }
                for attempt in (1, 2):
                    await self._pacer.wait("group")
                    code = await self._post(client, body)
                    if code == 0:
                        break
                    if code == TOO_FAST and attempt == 1:
                        log.warning("DingTalk group robot: too fast, waiting a minute")
                        await asyncio.sleep(self._too_fast_wait)
                        continue
                    raise GroupRobotError(f"DingTalk group robot answered errcode {code}")
        log.info("digest sent to the DingTalk leaders' group in %d message(s)", len(chunks))
        return len(chunks)

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> int:
        try:
            response = await client.post(self.url, params=self._params(), json=body)
        except httpx.HTTPError as exc:  # its text holds the URL, and so the token
            raise GroupRobotError(f"DingTalk group robot: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise GroupRobotError(f"DingTalk group robot answered HTTP {response.status_code}")
        try:
            result = response.json()
        except ValueError:
            raise GroupRobotError("DingTalk group robot answered no JSON") from None
        code = result.get("errcode", 0) if isinstance(result, dict) else -1
        return code if isinstance(code, int) else -1
