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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.app import DubanApp
from bot.clock import FakeClock
from bot.importer.parse import parse_plan_file
from bot.inbox import Received
from bot.models import Assignment, AssignmentRole, Role
from bot.services import audit, contacts, plans
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
