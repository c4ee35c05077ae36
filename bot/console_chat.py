"""`duban chat --as NAME`: talk to Duban in the terminal as a contact, on the configured database.

Each line typed becomes an event of the console channel and runs through the same chat core as
Telegram and WeCom; a number answers the buttons last shown. Notices queued for other people
stay in the outbox for `duban run` to deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from itertools import count
from typing import TextIO

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import db
from bot.channels.console import PLATFORM, ConsoleMessenger
from bot.chat import ChatCore, find_sender
from bot.clock import Clock, system_clock
from bot.events import Button, EventKind, IncomingMessage, clean_text
from bot.i18n import Translator, UserError
from bot.models import Role
from bot.settings import Settings
from handlers.registry import build_router

QUIT = "/quit"
PROMPT = "> "
# After the catalog's welcome: (separator, hint) per locale.
HINTS = {
    "zh-CN": ("", "输入 /help 查看可用命令，Ctrl-D 退出"),
    "en": (" ", "Type /help for the commands, Ctrl-D to quit."),
}


def greeting(t: Translator, name: str) -> str:
    """The one-line welcome with the hint on how to go on and how to leave."""
    separator, hint = HINTS.get(t.locale, HINTS["zh-CN"])
    return f"{t('chat.welcome', name=name)}{separator}{hint}"


def contact_role(engine: Engine, name: str) -> Role | None:
    """The role of the active contact with this name, or None when there is none."""
    with Session(engine) as session:
        contact = find_sender(session, PLATFORM, name)
        return contact.role if contact is not None else None


def to_event(name: str, text: str, update_id: str, button: Button | None) -> IncomingMessage:
    """A typed line as the core's event: a click when it picked one of the buttons shown."""
    if button is not None:
        return IncomingMessage(
            platform=PLATFORM,
            chat_id=name,
            sender_id=name,
            update_id=update_id,
            kind=EventKind.button,
            button_data=button.data,
            sender_name=name,
        )
    return IncomingMessage(
        platform=PLATFORM,
        chat_id=name,
        sender_id=name,
        update_id=update_id,
        text=clean_text(text),
        sender_name=name,
    )


async def read_line(stream: TextIO) -> str:
    """The next line of a stream ("" at EOF), read off the event loop.

    A daemon thread rather than asyncio.to_thread: a pending read in the default executor
    would keep asyncio.run from returning on Ctrl-C until the person pressed Enter.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(line or "")

    def work() -> None:
        try:
            line, error = stream.readline(), None
        except Exception as exc:  # a closed stream: handed to the awaiting coroutine
            line, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (Ctrl-C)
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=work, name="duban-console-input", daemon=True).start()
    return await future


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def run_chat(
    settings: Settings,
    name: str,
    *,
    stdin: TextIO,
    stdout: TextIO,
    clock: Clock = system_clock,
    colors: bool = True,
) -> int:
    """Chat as contact NAME until EOF or /quit; returns the exit code (2: no such contact)."""
    t = Translator(settings.locale)
    name = name.strip()
    engine = db.make_engine(settings.database_url)
    core: ChatCore | None = None
    try:
        await asyncio.to_thread(db.upgrade, engine)
        role = await asyncio.to_thread(contact_role, engine, name)
        if role is None:
            stdout.write(UserError("contact.unknown", name=name).render(t) + "\n")
            stdout.flush()
            return 2
        messenger = ConsoleMessenger(
            stdout, clock=clock, tz=settings.tz, colors=colors, roles={name: role.value}
        )
        core = ChatCore(engine, settings, build_router(), clock=clock)
        core.add_messenger(messenger)
        await messenger.send_text(name, greeting(t, name))
        interactive = _is_tty(stdin)
        session_key = uuid.uuid4().hex[:16]  # update ids stay unique across sessions
        for number in count(1):
            if interactive:
                stdout.write(PROMPT)
                stdout.flush()
            line = await read_line(stdin)
            if not line:  # EOF (Ctrl-D)
                if interactive:
                    stdout.write("\n")
                break
            text = line.strip()
            if not text:
                continue
            if text == QUIT:
                break
            button = messenger.choice(name, text)
            event = to_event(name, text, f"{session_key}:{number}", button)
            said = text if button is None else f"{text} → {button.label}"
            # A terminal shows what was typed already; scripted input is echoed for the record.
            messenger.user_says(name, said, show=not interactive)
            await core.handle(event)
        return 0
    finally:
        if core is not None:
            core.close()
        engine.dispose()
