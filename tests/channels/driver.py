"""What the shared dialog suite needs of a channel: a running Duban on that channel's fake
platform server, and a way to talk to it as the cast would.

Each channel has a module `tests/channels/driver_<name>.py` that defines

    NAME = "<name>"
    def available() -> str | None: why this channel cannot run here (None when it can)
    @asynccontextmanager
    async def running(db_url: str, *, start: datetime, **settings) -> AsyncIterator[ChatDriver]

`running` starts the channel's fake server (or shares one per session), seeds the cast with
`seed_cast(engine, NAME, ACCOUNTS)` and starts a `DubanApp` configured with that channel
only (plus its group robot, when it has one) and `run_scheduler=False`. The suite in
`tests/channels/test_dialog_suite.py` discovers the modules and runs every dialog on each,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import inbox
from bot.app import DubanApp
from bot.clock import FakeClock
from bot.events import IncomingMessage
from bot.importer.parse import parse_plan_file
from bot.inbox import Received
from bot.models import Assignment, AssignmentRole, Role
from bot.services import audit, contacts, plans
from bot.settings import Settings
from tests.harness import SAMPLE

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI)  # a Thursday, in working hours

# The cast: name -> (unit, role). 张三 holds items 9 and 10, 李四 item 22, 陈五 item 8 and is
# not bound yet (an invite code is made for him).
CAST: dict[str, tuple[str, Role]] = {
    "张三": ("基础教育科", Role.official),
    "李四": ("教师发展科", Role.official),
    "王局": ("局领导", Role.leader),
    "赵主任": ("办公室", Role.admin),
    "陈五": ("计财科", Role.official),
}
ITEMS = [(9, "张三"), (10, "张三"), (22, "李四"), (8, "陈五")]
UNBOUND = "陈五"
STRANGER = "路人"  # a platform account no contact has


@dataclass
class Said:
    """A message the bot sent to someone, as the suite reads it."""

    text: str  # what the person sees, markup removed
    choices: list[tuple[str, str]] = field(default_factory=list)  # (label, data) of its buttons
    raw: Any = None  # the fake server's record of the call


class ChatDriver(Protocol):
    """A running Duban on one channel's fake, and the cast's hands on it."""

    platform: str
    app: DubanApp
    clock: FakeClock
    codes: dict[str, str]  # invite codes by name (陈五's)

    @property
    def engine(self) -> Engine:
        """The app's database."""
        ...

    def account(self, person: str) -> str:
        """The platform account id of a cast member (also of STRANGER)."""
        ...

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends text; returns what the bot sent to that person in answer, once the
        event has been handled."""
        ...

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the choice with this data on a message they were sent."""
        ...

    async def redeliver(self, person: str) -> list[Said]:
        """The platform delivers the person's last event again (the same id); returns what
        the bot sent in answer (nothing, when deduplicated)."""
        ...

    def received(self, person: str, text: str) -> Received:
        """A text event from the person as the channel stores it in the inbox (its raw
        payload), for events stored before a crash and handled after the restart."""
        ...

    async def restart(self) -> None:
        """Stop the app and start a new one on the same database and fake (what the inbox
        holds unhandled is handled on start; wait until it has been)."""
        ...

    def group_messages(self) -> list[str]:
        """The markdown texts the group robot has posted, oldest first ([] without one)."""
        ...


def seed_cast(engine: Engine, platform: str, accounts: dict[str, str]) -> dict[str, str]:
    """Import the sample plan, register the cast (each with their account on `platform`,
    except the unbound one) and assign the items; returns invite codes by name."""
    parsed = parse_plan_file(SAMPLE)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(session, parsed, source_file=SAMPLE.name, actor="cli").plan
        people = {}
        for name, (unit, role) in CAST.items():
            bound = {} if name == UNBOUND else {platform: accounts[name]}
            people[name] = contacts.add_contact(
                session, name=name, unit=unit, role=role, accounts=bound, actor=audit.CLI_ACTOR
            )
        for number, name in ITEMS:
            item = plans.find_item(session, plan, str(number))
            session.add(
                Assignment(
                    item_id=item.id or 0, contact_id=people[name].id or 0, role=AssignmentRole.lead
                )
            )
        code, _ = contacts.create_invite(
            session,
            people[UNBOUND],
            valid_days=7,
            actor="cli",
            now=datetime(2023, 6, 1, 2, tzinfo=ZoneInfo("UTC")),
        )
        session.commit()
    return {UNBOUND: code}


WAIT_SECONDS = 10.0  # the longest a driver waits for the app to handle something


class DriverBase:
    """What the drivers share: the app's lifecycle on one set of settings and one clock, and
    waiting until it has handled events. A driver sets `platform`, `accounts` and `events`
    (what the platform's events are called, for timeouts), and overrides `_start_app` when
    starting takes more than `app.start()` (a connection to wait for)."""

    platform: str
    accounts: ClassVar[dict[str, str]]  # cast name (and STRANGER) -> platform account id
    events: ClassVar[str] = "events"  # "DingTalk events", "Telegram updates", ...

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock
        self.codes: dict[str, str] = {}
        self.app = self._new_app()
        self._handled: set[str] = set()
        self._changed = asyncio.Event()

    # --- the app --------------------------------------------------------------------------

    def _new_app(self) -> DubanApp:
        return DubanApp(self.settings, clock=self.clock, run_scheduler=False)

    def _observe(self, event: IncomingMessage) -> None:
        self._handled.add(event.update_id)
        self._changed.set()

    async def _start_app(self) -> None:
        """Start the app (a driver waits here for what the platform connects, too)."""
        await self.app.start()

    async def _start(self) -> None:
        """Start the app and wait until what the inbox held unhandled has been handled."""
        self.app.core.observers.append(self._observe)
        waiting = {entry.update_key for entry in inbox.pending(self.app.engine, self.platform)}
        await self._start_app()
        await self._wait_handled(waiting)

    async def _stop(self) -> None:
        await self.app.stop()

    async def restart(self) -> None:
        """Stop the app, start a new one on the same settings and fake, and wait until it has
        handled what the inbox held unhandled."""
        await self._stop()
        self.app = self._new_app()
        await self._start()

    @property
    def engine(self) -> Engine:
        """The app's database."""
        return self.app.engine

    # --- waiting --------------------------------------------------------------------------

    async def _wait_handled(self, update_ids: Iterable[str]) -> None:
        """Wait until the app has handled these events (its observers saw them)."""
        wanted = set(update_ids)
        deadline = time.monotonic() + WAIT_SECONDS
        while not wanted <= self._handled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(wanted - self._handled)
                raise TimeoutError(f"{self.events} {missing} were not handled")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        await asyncio.sleep(0)  # let notices kicked by the handler go out

    async def _wait_quiet(self) -> None:
        """Wait until no channel has an event in hand."""
        deadline = time.monotonic() + WAIT_SECONDS
        while any(getattr(channel, "_tasks", None) for channel in self.app.channels):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.events} still in hand")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    # --- the cast's hands ------------------------------------------------------------------

    def account(self, person: str) -> str:
        """The platform account id of a cast member (also of STRANGER)."""
        return self.accounts[person]

    @staticmethod
    def _check_choice(said: Said, data: str) -> None:
        """Refuse a click on a choice the message does not have."""
        if data not in [d for _, d in said.choices]:
            raise ValueError(f"{data!r} is not a choice of that message: {said.choices!r}")


D = TypeVar("D", bound=DriverBase)


@asynccontextmanager
async def serving(driver: D, fake: Any) -> AsyncIterator[D]:
    """Seed the cast, start the driver's app and yield the driver; stop the app at the end
    (also after a failed start: its server and engine), and, unless something failed, check
    that the fake saw no internal errors."""
    failed = False
    try:
        try:
            driver.codes = seed_cast(driver.app.engine, driver.platform, driver.accounts)
            await driver._start()
            yield driver
        finally:
            await driver._stop()
    except BaseException:
        failed = True
        raise
    finally:
        if not failed:
            assert fake.internal_errors == [], fake.internal_errors


# What a reader sees of the markdown WeCom, DingTalk and Feishu render, near enough.
MARKDOWN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^#{1,6}\s*", re.MULTILINE), ""),
    (re.compile(r"^>\s?", re.MULTILINE), ""),
    (re.compile(r"\*\*(.*?)\*\*", re.DOTALL), r"\1"),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"<font[^>]*>(.*?)</font>", re.DOTALL), r"\1"),
]


def plain(markdown: str) -> str:
    """What a reader sees of a markdown message, near enough: the markup removed."""
    for pattern, replacement in MARKDOWN:
        markdown = pattern.sub(replacement, markdown)
    return markdown
