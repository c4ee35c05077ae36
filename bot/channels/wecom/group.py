"""The leaders' group robot (群机器人): send-only markdown through a webhook key."""

from __future__ import annotations

import logging

import httpx

from bot.channels.wecom.channel import MemberPacer
from bot.events import split_text, utf8_size

log = logging.getLogger(__name__)

MAX_MARKDOWN_BYTES = 4096
PER_MINUTE = 20


class GroupRobotError(Exception):
    """The robot webhook refused a message."""


class GroupRobot:
    """Posts markdown to a WeCom group robot: 4096 bytes a message, at most 20 a minute."""

    def __init__(self, api_base: str, key: str, *, timeout: float = 10.0) -> None:
        self.url = f"{api_base.rstrip('/')}/webhook/send"
        self._key = key
        self._timeout = timeout
        self._pacer = MemberPacer(limit=PER_MINUTE)

    async def send_markdown(self, text: str) -> int:
        """Send text as markdown, split on line boundaries; returns the number of messages."""
        chunks = split_text(text, MAX_MARKDOWN_BYTES, size=utf8_size)
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            for chunk in chunks:
                await self._pacer.wait("group")
                response = await client.post(
                    self.url,
                    params={"key": self._key},
                    json={"msgtype": "markdown", "markdown": {"content": chunk}},
                )
                response.raise_for_status()
                result = response.json()
                if result.get("errcode", 0) != 0:
                    raise GroupRobotError(f"group robot answered {result.get('errcode')}")
        log.info("digest sent to the leaders' group in %d message(s)", len(chunks))
        return len(chunks)
