"""The reply corpus: 300+ realistic replies, each understood as meant or asked about, and none
recording anything its sender did not say.

Every case runs through the real chat core (router, handler, intake service, parser) on the
sample plan, in a transaction that is rolled back afterwards, so cases do not see each other.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot import db
from bot.chat import ChatContext, ChatCore
from bot.clock import FakeClock
from bot.events import IncomingMessage
from bot.i18n import UserError
from bot.importer.parse import parse_plan_file
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    MessageLink,
    Report,
    ReportStatus,
    Role,
    Target,
    TargetValue,
    WorkItem,
)
from bot.services import audit, contacts, plans, reports
from bot.settings import Settings
from handlers.registry import build_router
from tests.harness import SAMPLE, SHANGHAI

CORPUS_FILE = Path(__file__).parent / "data" / "reply_corpus.yaml"
CORPUS: dict[str, Any] = yaml.safe_load(CORPUS_FILE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = CORPUS["cases"]
NOW = datetime(2023, 6, 14, 10, 0, tzinfo=SHANGHAI)
_update_ids = itertools.count(1)


@dataclass
class Outcome:
    """What the bot did with one message."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    asked: bool = False
    error: str | None = None  # the UserError key of a refusal
    replies: list[str] = field(default_factory=list)
    handler: str = ""  # smalltalk | unclear | status | record | ask | refuse


@pytest.fixture(scope="module")
def corpus_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The sample plan with the corpus's cast, on a migrated SQLite file."""
    path = tmp_path_factory.mktemp("corpus") / "duban.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file=SAMPLE.name, actor="cli"
        ).plan
        for name, who in CORPUS["cast"].items():
            person = contacts.add_contact(
                session, name=name, unit="", role=Role(who["role"]), actor=audit.CLI_ACTOR
            )
            for number in who["items"]:
                item = plans.find_item(session, plan, str(number))
                session.add(
                    Assignment(
                        item_id=item.id or 0, contact_id=person.id or 0, role=AssignmentRole.lead
                    )
                )
        session.commit()
    yield engine
    engine.dispose()
    shutil.rmtree(path.parent, ignore_errors=True)


def _core(engine: Engine, locale: str) -> ChatCore:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=str(engine.url), locale=locale
    )
    return ChatCore(engine, settings, build_router(), clock=FakeClock(NOW))


@pytest.fixture(scope="module")
def cores(corpus_engine: Engine) -> Iterator[dict[str, ChatCore]]:
    made = {locale: _core(corpus_engine, locale) for locale in ("zh-CN", "en")}
    yield made
    for core in made.values():
        core.close()


def run_case(core: ChatCore, case: dict[str, Any]) -> Outcome:
    """Send one corpus message through the chat core; report what it did, then undo it all."""
    engine = core.engine
    with Session(engine, expire_on_commit=False) as session:
        sender = session.exec(select(Contact).where(Contact.name == case["sender"])).one()
        plan = plans.current_plan(session)
        earlier = NOW - timedelta(days=3)
        for number in case.get("done_items") or ():
            item = plans.find_item(session, plan, str(number))
            reports.record_report(
                session, item=item, contact=sender, now=earlier, status=ReportStatus.done
            )
        reply_to = None
        if case.get("reply_to_item"):
            item = plans.find_item(session, plan, str(case["reply_to_item"]))
            session.add(
                MessageLink(
                    platform="console",
                    chat_id=sender.name,
                    message_id="reminder-1",
                    item_id=item.id,
                    contact_id=sender.id,
                    created_at=earlier,
                )
            )
            reply_to = "reminder-1"
        session.flush()
        before = session.exec(select(func.max(Report.id))).one() or 0
        event = IncomingMessage(
            platform="console",
            chat_id=sender.name,
            sender_id=sender.name,
            update_id=f"corpus-{next(_update_ids)}",
            text=case["text"],
            reply_to_message_id=reply_to,
        )
        ctx = ChatContext(
            event=event,
            contact=sender,
            session=session,
            settings=core.settings,
            t=core.t,
            now=NOW,
            router=core.router,
            known_plan=plan,
        )
        outcome = Outcome()
        try:
            core._dispatch(ctx)
        except UserError as exc:
            outcome.error = exc.key
        session.flush()
        new = session.exec(
            select(Report, WorkItem.number)
            .join(WorkItem, col(WorkItem.id) == Report.item_id)
            .where(col(Report.id) > before)
            .order_by(col(Report.id))
        ).all()
        for report, number in new:
            values = session.exec(
                select(Target.metric, TargetValue.value)
                .join(Target, col(Target.id) == TargetValue.target_id)
                .where(TargetValue.report_id == report.id)
            ).all()
            outcome.recorded.append(
                {
                    "item": number,
                    "percent": report.percent,
                    "status": report.status.value if report.status else None,
                    "values": dict(values),
                }
            )
        outcome.replies = [out.text for out in ctx.outgoing]
        outcome.asked = any(out.buttons for out in ctx.outgoing) and not new
        session.rollback()
    return outcome


def _values_match(expected: dict[str, float], got: dict[str, float]) -> bool:
    """Whether the recorded target values are exactly the meant ones (keys are metric parts)."""
    if len(expected) != len(got):
        return False
    return all(
        any(key in metric and abs(value - float(want)) < 1e-6 for metric, value in got.items())
        for key, want in expected.items()
    )


def _as_meant(case: dict[str, Any], outcome: Outcome) -> bool:
    """Whether the recorded reports are exactly the ones the sender meant."""
    meant = case.get("reports") or []
    if len(meant) != len(outcome.recorded):
        return False
    for want, got in zip(meant, outcome.recorded, strict=True):
        if (want["item"], want["percent"], want["status"]) != (
            got["item"],
            got["percent"],
            got["status"],
        ):
            return False
        if not _values_match(want.get("values") or {}, got["values"]):
            return False
    return True


def verdict(case: dict[str, Any], outcome: Outcome, core: ChatCore) -> str:
    """'meant', 'asked' or a description of what went wrong."""
    meant = case["meant"]
    if outcome.recorded:
        if meant == "report" and _as_meant(case, outcome):
            return "meant"
        return f"recorded what was not said: {outcome.recorded} (meant {meant})"
    replies = "\n".join(outcome.replies)
    if meant == "ask":
        return "meant"  # buttons, or a message that says what to write: nothing recorded
    if outcome.asked:
        return "asked"
    if meant == "smalltalk":
        friendly = {core.t("report.smalltalk", name=case["sender"]), core.t("report.unclear")}
        ok = outcome.error is None and replies in friendly
        return "meant" if ok else f"not small talk: {outcome.error} {replies!r}"
    if meant == "status":
        if outcome.error == "status.not_yours":
            return "meant"  # the status answer for an official asking about another's item
        ok = outcome.error is None and bool(replies) and replies.startswith(_STATUS_MARKS)
        return "meant" if ok else f"no status shown: {outcome.error} {replies!r}"
    if meant == "refuse":
        return "meant" if outcome.error else f"not refused: {replies!r}"
    return f"not understood: {outcome.error} {replies!r}"


_STATUS_MARKS = ("🟢", "🟡", "🔴", "✅", "⚪")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reply_is_understood_as_meant_or_asked(
    cores: dict[str, ChatCore], case: dict[str, Any]
) -> None:
    core = cores[case.get("locale", "zh-CN")]
    outcome = run_case(core, case)
    result = verdict(case, outcome, core)
    assert result in ("meant", "asked"), f"{case['text']!r}: {result}"


def test_corpus_is_large_and_varied() -> None:
    kinds = {c["meant"] for c in CASES}
    assert len(CASES) >= 300
    assert kinds == {"report", "ask", "smalltalk", "status", "refuse"}
    assert sum(len(c.get("reports") or ()) > 1 for c in CASES) >= 30, "several items at once"
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_most_replies_are_understood_without_asking(cores: dict[str, ChatCore]) -> None:
    """Asking is safe but costs the sender a tap: at most one report in ten may need it."""
    reports_meant = [c for c in CASES if c["meant"] == "report" and not c.get("ask_ok")]
    asked = [c["id"] for c in reports_meant if run_case(cores[c.get("locale", "zh-CN")], c).asked]
    assert len(asked) <= len(reports_meant) // 10, asked
