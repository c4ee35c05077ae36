"""The leaders' group bot (飞书自定义机器人): send-only cards through its webhook.

`{FEISHU_DOMAIN}/open-apis/bot/v2/hook/{FEISHU_GROUP_WEBHOOK_TOKEN}` takes an interactive
card (a markdown element). With signature verification on, each request carries `timestamp`
(seconds) and `sign` = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", message=b"")).
A request body is at most 20 KB, so long digests are split; the bot takes at most 5 messages
a second and 100 a minute (beyond: code 11232, retried with backoff).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from bot.channels.feishu.api import markdown_card, split_message

log = logging.getLogger(__name__)

HOOK_PATH = "/open-apis/bot/v2/hook/"
PER_SECOND = 5
PER_MINUTE = 100
MARGIN = 0.1  # seconds
RATE_LIMIT_CODES = frozenset({11232, 99991400})  # the bot's limit, the gateway's
MAX_ATTEMPTS = 4
BASE_BACKOFF = 0.5


class GroupBotError(Exception):
    """The group bot refused a message (the text holds neither its token nor its secret)."""


def sign(timestamp: str, secret: str) -> str:
    """The custom bot's signature of a timestamp."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class _Pacer:
    """At most PER_SECOND messages in any second and PER_MINUTE in any minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sent: deque[float] = deque()
        self._clock = clock
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                last_second = sum(1 for at in self._sent if now - at < 1.0)
                if len(self._sent) < PER_MINUTE and last_second < PER_SECOND:
                    self._sent.append(now)
                    return
                if len(self._sent) >= PER_MINUTE:
                    wait = 60.0 - (now - self._sent[0])
                else:
                    wait = 1.0 - (now - self._sent[-last_second])
                # A margin: Feishu counts when a request arrives, a little after it left.
                await asyncio.sleep(max(wait, 0.0) + MARGIN)


class FeishuGroupBot:
    """Posts markdown cards to a Feishu group's custom bot (see the module docstring)."""

    def __init__(
        self,
        domain: str,
        token: str,
        secret: str | None,
        *,
        timeout: float = 10.0,
        backoff: float = BASE_BACKOFF,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = f"{domain.rstrip('/')}{HOOK_PATH}{token}"
        self._secrets = [s for s in (token, secret) if s]
        self._secret = secret
        self._timeout = timeout
        self._backoff = backoff
        self._wall_clock = wall_clock
        self._pacer = _Pacer()

    async def send_markdown(self, text: str) -> int:
        """Send text as markdown cards, split to the bot's limit; returns how many."""
        parts = split_message(text)
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            for part in parts:
                await self._post(client, {"msg_type": "interactive", "card": markdown_card(part)})
        log.info("digest sent to the leaders' Feishu group in %d message(s)", len(parts))
        return len(parts)

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._pacer.wait()
            signed = dict(body)
            if self._secret:
                timestamp = str(int(self._wall_clock()))
                signed.update(timestamp=timestamp, sign=sign(timestamp, self._secret))
            try:
                response = await client.post(self._url, json=signed)
            except httpx.HTTPError as exc:  # its text would hold the URL, and so the token
                if attempt == MAX_ATTEMPTS:
                    raise GroupBotError(f"Feishu group bot: {type(exc).__name__}") from None
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                continue
            code, msg = _code(response)
            if response.status_code == 200 and code == 0:
                return
            limited = response.status_code == 429 or code in RATE_LIMIT_CODES
            if (limited or response.status_code >= 500) and attempt < MAX_ATTEMPTS:
                log.warning("Feishu group bot: code %s, retrying (attempt %d)", code, attempt)
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                continue
            raise GroupBotError(
                f"Feishu group bot answered code {code} (HTTP {response.status_code}): "
                f"{self._scrub(msg)}"
            )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:200]


def _code(response: httpx.Response) -> tuple[int | None, str]:
    """The answer's code (`code`, or the old `StatusCode`) and message."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code", body.get("StatusCode"))
    msg = body.get("msg", body.get("StatusMessage", ""))
    return (code if isinstance(code, int) else None), (msg if isinstance(msg, str) else "")
