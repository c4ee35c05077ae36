"""The DingTalk driver of the shared dialog suite: Stream-mode frames in over a real websocket,
the OpenAPI out, at a fake DingTalk.

Each `running` starts its own `FakeDingTalk` (stopped at the end) and a Duban with the
DingTalk app and the leaders' group robot (its token and 加签 secret at the fake). People are
DingTalk userIds (`ACCOUNTS`); what they send is pushed on the stream connection as DingTalk
pushes a robot message. Choices are StandardCard buttons (`Said.choices` = (label, data), the
data read back from the button's id as the channel encodes it); a click is a card callback
frame naming the button. A redelivery is DingTalk's: the same frame (same messageId and msgId)
pushed again.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bot.clock import FakeClock
from bot.inbox import Received
from bot.settings import Settings
from tests.channels.driver import STRANGER, WAIT_SECONDS, DriverBase, Said, plain, serving
from tests.fakes.dingtalk_api import FakeDingTalk, Pushed, Sent

NAME = "dingtalk"

ACCOUNTS: dict[str, str] = {
    "张三": "zhangsan01",
    "李四": "lisi02",
    "王局": "manager7301",
    "赵主任": "zhaozhuren",
    "陈五": "chenwu05",
    STRANGER: "passerby99",
}


def available() -> str | None:
    """Why the DingTalk channel cannot run here (None: it can)."""
    try:
        import dingtalk_stream  # noqa: F401
        import websockets  # noqa: F401

        import bot.channels.dingtalk.channel  # noqa: F401
    except ImportError as exc:
        return f"the DingTalk channel cannot be imported: {exc}"
    return None


def dingtalk_settings(fake: FakeDingTalk, db_url: str, **extra: Any) -> Settings:
    """Settings for a DingTalk-only Duban pointed at the fake (API, old API and gateway)."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "dingtalk_client_id": fake.client_id,
        "dingtalk_client_secret": fake.client_secret,
        "dingtalk_api_base_url": fake.url,
        "dingtalk_oapi_base_url": fake.url,
        "web_host": "127.0.0.1",
        "web_port": 0,
        "locale": "zh-CN",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class DingTalkDriver(DriverBase):
    """A running Duban on the fake DingTalk, and the cast's hands on it."""

    platform = NAME
    accounts = ACCOUNTS
    events = "DingTalk events"
    group_robot = True  # the leaders' group robot posts to the fake's robot/send

    def __init__(self, fake: FakeDingTalk, settings: Settings, clock: FakeClock) -> None:
        self.fake = fake
        super().__init__(settings, clock)
        self._last: dict[str, Pushed] = {}  # person -> the last frame they caused

    async def _start_app(self) -> None:
        """Start the app and wait for its stream connection."""
        connections = self.fake.connections_made
        await self.app.start()
        await self.fake.await_connected(connections + 1, WAIT_SECONDS)

    # --- frames ---------------------------------------------------------------------------

    @staticmethod
    def _update_id(pushed: Pushed) -> str:
        from dingtalk_stream import CallbackMessage

        from bot.channels.dingtalk.channel import message_event

        event = message_event(CallbackMessage.from_dict(pushed.frame))
        assert event is not None
        return event.update_id

    async def _push(self, person: str, pushed_by: Any) -> list[Said]:
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        pushed: Pushed = pushed_by()
        self._last[person] = pushed
        ack = await self.fake.await_ack(pushed.message_id, timeout=WAIT_SECONDS)
        assert ack.code == 200, f"the frame was acked {ack.code}"
        await self._wait_handled({self._update_id(pushed)})
        return self._said(user, before)

    # --- the cast's hands ------------------------------------------------------------------

    def _said(self, user: str, before: int) -> list[Said]:
        return [_said(message) for message in self.fake.messages_to(user)[before:]]

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends the robot text; returns what the robot sent back to them."""
        user = ACCOUNTS[person]
        return await self._push(person, lambda: self.fake.user_says(user, text))

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the card's button whose data is this."""
        from bot.channels.dingtalk.channel import decode_button

        self._check_choice(said, data)
        card = said.raw
        assert isinstance(card, Sent) and card.kind == "card"
        action = next(b for _, b in card.buttons if decode_button(b) == data)
        user = ACCOUNTS[person]
        return await self._push(person, lambda: self.fake.click(user, card, action))

    async def redeliver(self, person: str) -> list[Said]:
        """DingTalk pushes the person's last frame again; returns what the bot sent in
        answer."""
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        last = self._last[person]
        acked = len(self.fake.acks_of(last.message_id))
        self.fake.redeliver(last.message_id)
        await self.fake.await_ack(last.message_id, acked + 1, timeout=WAIT_SECONDS)
        await self._wait_quiet()
        return self._said(user, before)

    def received(self, person: str, text: str) -> Received:
        """A text message as the channel stores it: the frame, as the inbox keeps it."""
        from dingtalk_stream import CallbackMessage

        from bot.channels.dingtalk.channel import frame_payload, message_event

        message = CallbackMessage.from_dict(self.fake.robot_frame(ACCOUNTS[person], text))
        event = message_event(message)
        assert event is not None
        return Received(event.update_id, event.chat_id, frame_payload(message))

    def group_messages(self) -> list[str]:
        """The markdown the group robot posted, oldest first."""
        return [message.text or "" for message in self.fake.group_messages]

    def sent_to(self, person: str) -> list[Said]:
        """Every robot message and card sent to the person, oldest first."""
        return self._said(ACCOUNTS[person], 0)


def _plain(markdown: str) -> str:
    """What a DingTalk user sees of a markdown message, near enough: the markup removed."""
    return re.sub(r" {2}\n", "\n", plain(markdown))


def _said(message: Sent) -> Said:
    from bot.channels.dingtalk.channel import decode_button

    if message.kind == "card":
        body = _plain(message.text or "")
        text = f"{message.title}\n{body}" if body else message.title or ""
        choices = [(label, decode_button(action) or "") for label, action in message.buttons]
        return Said(text=text, choices=choices, raw=message)
    text = message.text or ""
    if message.kind == "markdown":
        text = _plain(text)
    return Said(text=text, raw=message)


@asynccontextmanager
async def running(
    db_url: str, *, start: datetime, **settings: Any
) -> AsyncIterator[DingTalkDriver]:
    """Duban on its own fake DingTalk with the group robot, the cast seeded with userIds."""
    with FakeDingTalk() as fake:
        values = {
            "dingtalk_group_access_token": fake.group_token,
            "dingtalk_group_secret": fake.group_secret,
            **settings,
        }
        driver = DingTalkDriver(fake, dingtalk_settings(fake, db_url, **values), FakeClock(start))
        async with serving(driver, fake):
            yield driver
