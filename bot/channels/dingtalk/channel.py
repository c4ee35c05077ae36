"""The DingTalk (钉钉) channel: an internal app's robot in Stream mode (a long connection: no
public callback URL) on the official SDK `dingtalk-stream`, and a messenger on the OpenAPI.

Incoming (`stream.py`): robot messages of 1:1 chats (topic `/v1.0/im/bot/messages/get`) and
card clicks (`/v1.0/card/instances/callback`). Each is turned into the core's event, stored in
the inbox, and only then acknowledged (the ack is the SDK handler's return value); frames that
come while a store is in flight are stored together, in one transaction. Each event is handled
in a tracked task, the events of one person in the order they came. On start, what
the inbox holds unhandled is handed over first. A message DingTalk delivers again (it does
when no ack came) has the same msgId and is stored and handled once. Group messages (someone
@-mentions the robot in a group) are acknowledged and left alone: Duban talks to people 1:1.

People are known by their userId in the organisation (`senderStaffId`; the encrypted
`senderId` is not used). Text is text; a voice message is a voice event with DingTalk's speech
recognition as its text; pictures, files and videos are file events whose attachment is the
`downloadCode`, fetched (`fetch_file`) through `/v1.0/robot/messageFiles/download` and its
temporary link, streamed into the evidence store's capped sink.

Outgoing (`api.py`): `/v1.0/robot/oToMessages/batchSend` with `sampleText` or
`sampleMarkdown`, split at 5000 characters on line boundaries; files and pictures are uploaded
to the old media API and sent as `sampleFile` / `sampleImageMsg`.

Choices (buttons) are an interactive card, not an action card: the buttons of an action card
(`sampleActionCard2..6`) are links only, and nothing of a click comes back to the robot. The
card is DingTalk's template-free `StandardCard` (`/v1.0/im/v1.0/robot/interactiveCards/send`,
the call the SDK's `ChatbotHandler.reply_card` makes) whose buttons have `actionType:
"request"`; a click is delivered on the same stream connection as a card callback naming the
button's id, and the button's data is in that id (`d_` + base64url), so nothing needs to be
remembered between sending and the click, across restarts too. No card template has to be
built in DingTalk's card builder for this.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

from dingtalk_stream import (
    AckMessage,
    CallbackMessage,
    CardCallbackMessage,
    ChatbotMessage,
    Credential,
)
from dingtalk_stream.card_callback import Card_Callback_Router_Topic
from starlette.routing import BaseRoute

from bot.channels.common import EventHandling
from bot.channels.dingtalk.api import NETWORK_ERRORS, DingTalkApi, DingTalkError, DownloadTooBig
from bot.channels.dingtalk.stream import DubanStreamClient, FrameRefused, TopicHandler
from bot.channels.dingtalk.text import DEFAULT_TITLE, clip, dingtalk_markdown, markdown_title
from bot.channels.spec import plain_account
from bot.chat import ChatCore
from bot.events import (
    Attachment,
    Button,
    EventKind,
    Fetched,
    FileSink,
    IncomingMessage,
    SentMessage,
    clean_text,
    split_text,
)
from bot.evidence import FetchFailed, FileTooBig
from bot.i18n import UserError
from bot.inbox import Received
from bot.settings import Settings
from bot.web import RefusalLog

log = logging.getLogger(__name__)

PLATFORM = "dingtalk"
ROBOT_TOPIC = ChatbotMessage.TOPIC  # /v1.0/im/bot/messages/get
CARD_TOPIC = Card_Callback_Router_Topic  # /v1.0/card/instances/callback
MAX_TEXT = 5000  # characters of one text or markdown message
MAX_CARD_TEXT = 2000  # characters of a card's body (longer text goes ahead as messages)
MAX_BUTTON_LABEL = 20
WORKERS = 16  # events handled at once (their replies wait on the network)
STOP_GRACE = 5.0  # seconds stop() waits for the events in hand
MAX_DOWNLOAD = 200 * 1024 * 1024  # no download goes past this, whatever the sink allows
BUTTON_PREFIX = "d_"
_DOWNLOAD_CODE = re.compile(r"[A-Za-z0-9+/=_\-.@:$#]{1,2048}")
_MSG_ID = re.compile(r"[A-Za-z0-9+/=_\-.@:$#]{1,256}")
# What people send, and what Duban calls it.
MEDIA_KINDS = {"picture": "photo", "file": "document", "video": "video"}


# ---------------------------------------------------------------------- incoming


def encode_button(data: str) -> str:
    """A button's data as the id of a card button (base64url: any data, any characters)."""
    return BUTTON_PREFIX + base64.urlsafe_b64encode(data.encode("utf-8")).decode().rstrip("=")


def decode_button(action_id: str) -> str | None:
    """The data behind a card button's id, or None when it is not one of Duban's."""
    if not action_id.startswith(BUTTON_PREFIX) or len(action_id) > 200:
        return None
    body = action_id[len(BUTTON_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def frame_payload(message: CallbackMessage) -> str:
    """A callback frame as the inbox stores it (and `to_event` reads it back)."""
    frame = {
        "specVersion": message.spec_version,
        "type": CallbackMessage.TYPE,
        "headers": message.headers.to_dict(),
        "data": json.dumps(message.data, ensure_ascii=False),
    }
    return json.dumps(frame, ensure_ascii=False)


def to_event(payload: str) -> IncomingMessage | None:
    """A stored frame as the core's event (None: nothing for the bot); FrameRefused when it
    cannot be read."""
    try:
        frame = json.loads(payload)
        message = CallbackMessage.from_dict(frame)
    except (ValueError, TypeError, AttributeError):
        raise FrameRefused("a stored frame that is not JSON") from None
    return message_event(message)


def message_event(message: CallbackMessage) -> IncomingMessage | None:
    """A callback frame's event (None: nothing for the bot); FrameRefused when unreadable."""
    data = message.data
    if not isinstance(data, dict):
        raise FrameRefused("frame data that is not a JSON object")
    topic = message.headers.topic
    if topic == ROBOT_TOPIC:
        return robot_event(data)
    if topic == CARD_TOPIC:
        return card_event(data, message.headers.message_id)
    raise FrameRefused("a callback of a topic not subscribed")


def _user(value: Any) -> str:
    user = plain_account(value) if isinstance(value, str) else None
    if user is None:
        raise FrameRefused("no valid sender userId")
    return user


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FrameRefused(f"{what} that is not text")
    return clean_text(value)


def _download_code(content: dict[str, Any]) -> str:
    code = content.get("downloadCode")
    if not isinstance(code, str) or not _DOWNLOAD_CODE.fullmatch(code):
        raise FrameRefused("a media message without a valid downloadCode")
    return code


def robot_event(data: dict[str, Any]) -> IncomingMessage | None:
    """A robot message (1:1; group messages are None) as the core's event."""
    try:
        message = ChatbotMessage.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise FrameRefused("a malformed robot message") from None
    if message.conversation_type != "1":
        return None  # someone @-mentioned the robot in a group: not a conversation with Duban
    user = _user(message.sender_staff_id)
    msg_id = message.message_id
    if not isinstance(msg_id, str) or not _MSG_ID.fullmatch(msg_id):
        raise FrameRefused("a robot message without a valid msgId")
    base: dict[str, Any] = {
        "platform": PLATFORM,
        "chat_id": user,
        "sender_id": user,
        "update_id": f"msg:{msg_id}",
        "message_id": msg_id,
        "sender_name": _text(message.sender_nick, "a sender name")[:64],
    }
    kind = message.message_type
    content = data.get("content")
    if kind == "text":
        text = message.text.content if message.text is not None else None
        return IncomingMessage(**base, text=_text(text, "text").strip())
    if kind == "richText":
        parts = content.get("richText") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise FrameRefused("a rich text message without its parts")
        texts = [_text(p.get("text"), "text") for p in parts if isinstance(p, dict)]
        text = "".join(texts).strip()
        if text:
            return IncomingMessage(**base, text=text)
        pictures = [p for p in parts if isinstance(p, dict) and "downloadCode" in p]
        if pictures:
            attachment = Attachment("photo", _download_code(pictures[0]))
            return IncomingMessage(**base, kind=EventKind.file, attachment=attachment)
        return IncomingMessage(**base, kind=EventKind.unsupported)
    if kind == "audio":
        if not isinstance(content, dict):
            raise FrameRefused("a voice message without content")
        heard = _text(content.get("recognition"), "a recognition").strip()
        return IncomingMessage(**base, kind=EventKind.voice, text=heard)
    if kind in MEDIA_KINDS:
        if not isinstance(content, dict):
            raise FrameRefused("a media message without content")
        name = _text(content.get("fileName"), "a file name")[:255]
        attachment = Attachment(MEDIA_KINDS[kind], _download_code(content), name=name)
        return IncomingMessage(**base, kind=EventKind.file, attachment=attachment)
    return IncomingMessage(**base, kind=EventKind.unsupported)


def card_event(data: dict[str, Any], message_id: Any) -> IncomingMessage:
    """A click on a button of one of Duban's cards as a button event."""
    if not isinstance(message_id, str) or not _MSG_ID.fullmatch(message_id):
        raise FrameRefused("a card callback without a valid messageId")
    try:
        callback = CardCallbackMessage.from_dict(data)
    except (TypeError, ValueError, AttributeError):
        raise FrameRefused("a malformed card callback") from None
    user = _user(callback.user_id)
    content = callback.content if isinstance(callback.content, dict) else {}
    private = content.get("cardPrivateData")
    actions = private.get("actionIds") if isinstance(private, dict) else None
    found = None
    if isinstance(actions, list):
        for action in actions:
            if isinstance(action, str) and (found := decode_button(action)) is not None:
                break
    if found is None:
        raise FrameRefused("a card callback without a Duban button")
    out_track = callback.card_instance_id if isinstance(callback.card_instance_id, str) else None
    return IncomingMessage(
        platform=PLATFORM,
        chat_id=user,
        sender_id=user,
        update_id=f"card:{message_id}",
        kind=EventKind.button,
        button_data=clean_text(found),
        message_id=out_track,
    )


# ---------------------------------------------------------------------- outgoing


def standard_card(text: str, buttons: tuple[tuple[Button, ...], ...]) -> dict[str, Any]:
    """A StandardCard: the first line as its title, the rest as markdown, each row of
    buttons an action block of `request` buttons (their data in their ids)."""
    title, _, body = text.partition("\n")
    contents: list[dict[str, Any]] = []
    if body.strip():
        contents.append({"type": "markdown", "text": dingtalk_markdown(body), "id": "text_0"})
    for r, row in enumerate(buttons):
        actions = [
            {
                "type": "button",
                "label": {
                    "type": "text",
                    "text": clip(button.label, MAX_BUTTON_LABEL),
                    "id": f"label_{r}_{c}",
                },
                "actionType": "request",
                "status": "primary" if c == 0 else "normal",
                "id": encode_button(button.data),
            }
            for c, button in enumerate(row)
        ]
        if actions:
            contents.append({"type": "action", "actions": actions, "id": f"action_{r}"})
    return {
        "config": {"autoLayout": True, "enableForward": False},
        "header": {"title": {"type": "text", "text": clip(title.strip() or DEFAULT_TITLE, 60)}},
        "contents": contents,
    }


class DingTalkMessenger:
    """Sends for the core (robot messages, cards, files) and fetches files people send."""

    platform = PLATFORM

    def __init__(self, api: DingTalkApi) -> None:
        self.api = api

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Send text (split at 5000 characters); with buttons the last part is a card."""
        if any(buttons):
            chunks = split_text(text, MAX_CARD_TEXT)
            for chunk in chunks[:-1]:
                await self._send_one(chat_id, chunk, markup)
            biz_id = f"duban-{uuid.uuid4().hex}"
            key = await self.api.send_card(chat_id, biz_id, standard_card(chunks[-1], buttons))
            return SentMessage(PLATFORM, chat_id, key or biz_id)
        sent: SentMessage | None = None
        for chunk in split_text(text, MAX_TEXT):
            sent = await self._send_one(chat_id, chunk, markup)
        assert sent is not None
        return sent

    async def _send_one(self, chat_id: str, text: str, markup: str) -> SentMessage:
        if markup == "markdown":
            param = {"title": markdown_title(text), "text": dingtalk_markdown(text)}
            key = await self.api.send_robot_message(chat_id, "sampleMarkdown", param)
        else:
            key = await self.api.send_robot_message(chat_id, "sampleText", {"content": text})
        return SentMessage(PLATFORM, chat_id, key or uuid.uuid4().hex)

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a file and send it (the caption first, as text)."""
        if caption:
            await self.send_text(chat_id, caption)
        media_id = await self.api.upload_media(path, "file")
        param = {
            "mediaId": media_id,
            "fileName": path.name,
            "fileType": path.suffix.lstrip(".").lower() or "file",
        }
        key = await self.api.send_robot_message(chat_id, "sampleFile", param)
        return SentMessage(PLATFORM, chat_id, key or media_id)

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a picture and send it (the caption first, as text)."""
        if caption:
            await self.send_text(chat_id, caption)
        media_id = await self.api.upload_media(path, "image")
        key = await self.api.send_robot_message(chat_id, "sampleImageMsg", {"photoURL": media_id})
        return SentMessage(PLATFORM, chat_id, key or media_id)

    async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
        """Download a file someone sent (its temporary link), streamed into sink; FileTooBig
        past the cap, FetchFailed otherwise (no token and no link in its text)."""
        try:
            url = await self.api.download_url(attachment.file_id)
        except DingTalkError as exc:
            raise FetchFailed(f"download link: {exc}") from None
        cap = min(MAX_DOWNLOAD, int(getattr(sink, "limit", MAX_DOWNLOAD)))
        try:
            mime = await self.api.download(url, sink.write, cap)
        except (FileTooBig, FetchFailed):
            raise
        except DownloadTooBig as exc:
            raise FileTooBig(str(exc)) from None
        except DingTalkError as exc:
            raise FetchFailed(f"download answered HTTP {exc.status}") from None
        except NETWORK_ERRORS as exc:  # its text may hold the link
            raise FetchFailed(f"download failed: {type(exc).__name__}") from None
        return Fetched(mime=mime, name=attachment.name)


# ---------------------------------------------------------------------- the channel


class DingTalkChannel(EventHandling):
    """The stream connection and the messenger; events are handled in tracked tasks."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        core: ChatCore,
        *,
        reconnect_first: float | None = None,
        backoff: float | None = None,
    ) -> None:
        if settings.dingtalk_client_id is None or settings.dingtalk_client_secret is None:
            raise ValueError(
                "DingTalk settings missing: DINGTALK_CLIENT_ID, DINGTALK_CLIENT_SECRET"
            )
        secret = settings.dingtalk_client_secret.get_secret_value()
        client_id = settings.dingtalk_client_id
        self.core = core
        api = DingTalkApi(
            client_id,
            secret,
            settings.dingtalk_robot_code or client_id,
            api_base=settings.dingtalk_api_base_url,
            oapi_base=settings.dingtalk_oapi_base_url,
        )
        if backoff is not None:
            api.backoff = backoff
        self.messenger = DingTalkMessenger(api)
        self._refusals = RefusalLog(log, "DingTalk frame")
        extra = {} if reconnect_first is None else {"reconnect_first": reconnect_first}
        self.client = DubanStreamClient(
            Credential(client_id, secret),
            api_base=settings.dingtalk_api_base_url,
            refusals=self._refusals,
            **extra,
        )
        self.client.register_callback_handler(ROBOT_TOPIC, TopicHandler(self._accept))
        self.client.register_callback_handler(CARD_TOPIC, TopicHandler(self._accept))
        self._init_handling(log, "DingTalk message", WORKERS)
        self._accepting = False
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check the app's credentials, hand over what was stored and not handled (in
        order), then connect. Credentials DingTalk refuses are a UserError; DingTalk out of
        reach is not (the connection is tried again and again)."""
        try:
            await self.messenger.api.token()
        except DingTalkError as exc:
            if exc.status in (400, 401, 403):
                await self.messenger.api.close()
                raise UserError("channel.dingtalk.credentials_refused", code=exc.code) from None
            log.warning("DingTalk: no access token yet (%s); connecting anyway", exc)
        await self._hand_over(
            PLATFORM,
            to_event,
            FrameRefused,
            "DingTalk: %d stored messages handed over after a restart",
        )
        self._accepting = True
        self._runner = asyncio.create_task(self.client.run(), name="dingtalk-stream")

    async def stop(self) -> None:
        """Disconnect, then finish the events in hand (what is left stays in the inbox)."""
        self._accepting = False
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        deadline = time.monotonic() + STOP_GRACE  # for all of it: the app allows 8 s
        await self.client.finish(STOP_GRACE)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        await self.messenger.api.close()

    def routes(self) -> list[BaseRoute]:
        """None: Stream mode needs no public endpoint."""
        return []

    async def _accept(self, message: CallbackMessage) -> tuple[int, Any]:
        """Store a robot message or a card click before its ack (the return value)."""
        try:
            event = message_event(message)
        except FrameRefused as exc:
            self._refusals.refused(400, exc.reason)
            return AckMessage.STATUS_BAD_REQUEST, None
        if event is None:
            return AckMessage.STATUS_OK, None  # not for the bot (a group message)
        if not self._accepting:
            return AckMessage.STATUS_SYSTEM_EXCEPTION, None  # stopping: DingTalk sends it again
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # The handling task is made now, before storing: the events of one person keep
        # their order whichever store finishes first.
        self._spawn(event, stored)
        try:
            received = Received(event.update_id, event.chat_id, frame_payload(message))
            stored.set_result(await self._store(PLATFORM, received))
        except Exception as exc:
            self._refusals.refused(500, f"storing the message failed ({type(exc).__name__})")
            return AckMessage.STATUS_SYSTEM_EXCEPTION, None
        finally:
            if not stored.done():
                stored.set_result(False)
        return AckMessage.STATUS_OK, None
