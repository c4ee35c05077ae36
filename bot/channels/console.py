"""The console channel: the bot's messages as lines on a text stream (`duban chat`, the demo).

Each message reads "HH:MM 督办 → 张三: text"; buttons are numbered choices "[1] 9. ..." that
the person answers by typing the number; files and photos show as "📎 path" lines. The
recipient (chat_id) on the console is the contact's name.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.clock import Clock, system_clock
from bot.events import Button, SentMessage

PLATFORM = "console"
BOT_NAME = "督办"
INDENT = "    "

RESET = "\033[0m"
DIM = "2"
# ANSI colours per speaker: the bot, then each contact role.
ROLE_COLORS = {
    "bot": "36",  # cyan
    "official": "32",  # green
    "leader": "35",  # magenta
    "admin": "33",  # yellow
}

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class TranscriptLine:
    """One message of a console conversation, as a demo or a test reads it back."""

    time: datetime
    sender: str
    recipient: str
    text: str
    buttons: tuple[str, ...] = ()


def paint(text: str, code: str | None, *, colors: bool) -> str:
    """Wrap text in an ANSI colour code (unchanged when colours are off or no code)."""
    if not colors or not code:
        return text
    return f"\033[{code}m{text}{RESET}"


def plain_text(text: str, markup: str) -> str:
    """Text as the console shows it: HTML markup reduced to its words."""
    if markup == "html":
        return html.unescape(_TAG.sub("", text))
    return text


def flat_buttons(buttons: tuple[tuple[Button, ...], ...]) -> list[Button]:
    """The buttons of every row, in reading order (their choice numbers start at 1)."""
    return [button for row in buttons for button in row]


def format_buttons(buttons: list[Button]) -> list[str]:
    """Numbered choice lines: "[1] 9. 持续扩增教育优质资源"."""
    return [f"[{number}] {button.label}" for number, button in enumerate(buttons, start=1)]


def format_attachment(path: Path) -> str:
    """The line that stands for a sent file or picture."""
    return f"📎 {path}"


def format_header(
    when: datetime,
    sender: str,
    recipient: str,
    *,
    colors: bool,
    sender_color: str | None,
    recipient_color: str | None,
) -> str:
    """The header "HH:MM 督办 → 张三:", the time already in the plan's time zone."""
    stamp = paint(when.strftime("%H:%M"), DIM, colors=colors)
    who = paint(sender, sender_color, colors=colors)
    to = paint(recipient, recipient_color, colors=colors)
    return f"{stamp} {who} → {to}:"


def format_message(header: str, text: str, extra: Sequence[str] = ()) -> str:
    """A header, the text (first line beside it, the rest indented) and indented extra lines."""
    lines = text.split("\n") if text else []
    first = f"{header} {lines[0]}" if lines else header
    rest = [f"{INDENT}{line}" if line else "" for line in lines[1:]]
    rest += [f"{INDENT}{line}" for line in extra]
    return "\n".join([first, *rest]) + "\n"


class ConsoleMessenger:
    """The Messenger protocol on a text stream, with a transcript and the last buttons per chat."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Clock = system_clock,
        tz: tzinfo | None = None,
        colors: bool = True,
        roles: dict[str, str] | None = None,
        platform: str = PLATFORM,
        bot_name: str = BOT_NAME,
    ) -> None:
        self.platform = platform
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.clock = clock
        self.tz: tzinfo = tz or ZoneInfo("Asia/Shanghai")
        self.colors = colors and _is_tty(self.stream)
        self.roles: dict[str, str] = dict(roles or {})  # contact name -> role, for colours
        self.bot_name = bot_name
        self.transcript: list[TranscriptLine] = []
        self.choices: dict[str, list[Button]] = {}  # chat_id -> buttons of its last message
        self._ids: dict[str, int] = {}

    def color_of(self, speaker: str) -> str | None:
        """The ANSI colour of a speaker: the bot's, or the one of the contact's role."""
        if speaker == self.bot_name:
            return ROLE_COLORS["bot"]
        return ROLE_COLORS.get(self.roles.get(speaker, ""))

    def choice(self, chat_id: str, answer: str) -> Button | None:
        """The button a typed number picks among the chat's last shown choices, or None."""
        answer = answer.strip()
        shown = self.choices.get(chat_id, [])
        if not answer.isdigit() or not 1 <= int(answer) <= len(shown):
            return None
        return shown[int(answer) - 1]

    def user_says(self, name: str, text: str, *, show: bool = True) -> None:
        """Record what a person typed (and show it, for scripted input that the terminal hides)."""
        self._write(name, self.bot_name, text, show=show)

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Print a message to a contact, with its buttons as numbered choices."""
        shown = flat_buttons(buttons)
        self.choices[chat_id] = shown
        labels = format_buttons(shown)
        self._write(self.bot_name, chat_id, plain_text(text, markup), extra=labels)
        return self._sent(chat_id)

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Print a file as a "📎 path" line under its caption."""
        return self._attachment(chat_id, path, caption)

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Print a picture as a "📎 path" line under its caption."""
        return self._attachment(chat_id, path, caption)

    def _attachment(self, chat_id: str, path: Path, caption: str | None) -> SentMessage:
        self.choices[chat_id] = []
        line = format_attachment(path)
        text = f"{caption}\n{line}" if caption else line
        self._write(self.bot_name, chat_id, text)
        return self._sent(chat_id)

    def _write(
        self,
        sender: str,
        recipient: str,
        text: str,
        *,
        extra: Sequence[str] = (),
        show: bool = True,
    ) -> None:
        when = self.clock().astimezone(self.tz)
        self.transcript.append(TranscriptLine(when, sender, recipient, text, tuple(extra)))
        if not show:
            return
        header = format_header(
            when,
            sender,
            recipient,
            colors=self.colors,
            sender_color=self.color_of(sender),
            recipient_color=self.color_of(recipient),
        )
        self.stream.write(format_message(header, text, extra))
        self.stream.flush()

    def _sent(self, chat_id: str) -> SentMessage:
        self._ids[chat_id] = self._ids.get(chat_id, 0) + 1
        return SentMessage(self.platform, chat_id, str(self._ids[chat_id]))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
