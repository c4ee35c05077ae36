"""A model-based test: random sequences of admin and official actions against a small model.

Hypothesis drives the services (plans, contacts, assignments, reports) through imports and
re-imports of the sample plan and two variants, contacts, assignments and unassignments,
deadlines, reports, corrections, undo and reports on someone's behalf. After every step the
database is compared with an in-memory model of what should be there. Each step runs in its
own session and commits, as a chat update or a CLI command does.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot import db
from bot.i18n import UserError
from bot.importer.model import ParsedPlan
from bot.importer.parse import parse_plan_file
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    Outbox,
    Report,
    ReportStatus,
    Role,
    TargetValue,
    WorkItem,
)
from bot.services import assignments, contacts, plans, reports
from tests.conftest import SAMPLE_PLAN, _truncate_all

ACTOR = "test"
START = datetime(2023, 6, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
UNDO_WINDOW = timedelta(minutes=10)  # corrections and /undo (README)
VERSIONS = ("sample", "edited", "longer")
# The items the sequences act on: few, so that people meet on them, including the ones the
# variants change (16 retitled, 27 gone in "edited", 28 only in "longer"); 9 has targets.
IN_PLAY = (2, 9, 16, 27, 28)
PERCENTS = st.none() | st.integers(0, 100)
STATUSES = st.none() | st.sampled_from(list(ReportStatus))
PEOPLE = {"张敏": Role.official, "李四": Role.official, "王五": Role.official, "赵主任": Role.admin}


@pytest.fixture(scope="module")
def plan_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ParsedPlan]:
    """The sample plan, a variant with item 16 retitled and item 27 gone, and one with item 28."""
    folder = tmp_path_factory.mktemp("plans")
    text = SAMPLE_PLAN.read_text(encoding="utf-8")
    edited = text[: text.index("27.着力推进")].replace(
        "16.加强师德师风建设。", "16.全面加强师德师风建设。"
    )
    longer = text.rstrip("\n") + "\n28.加强教育新闻宣传工作。\n全年发布新闻稿100篇以上。\n"
    versions = {}
    for name, content in (("sample", text), ("edited", edited), ("longer", longer)):
        path = folder / f"{name}.txt"
        path.write_text(content, encoding="utf-8")
        versions[name] = parse_plan_file(path)
    assert len(versions["edited"].items) == 26 and len(versions["longer"].items) == 28
    return versions


@dataclass
class ModelReport:
    """A report as the model expects it to be stored."""

    id: int
    item: int
    contact: str
    percent: int | None
    created_at: datetime
    entered_by: str | None
    values: int
    superseded_by: int | None = None
    withdrawn: bool = False

    @property
    def live(self) -> bool:
        """Neither corrected nor taken back."""
        return self.superseded_by is None and not self.withdrawn

    @property
    def order(self) -> tuple[datetime, int]:
        """Newest last, as the database orders reports (time, then id)."""
        return (self.created_at, self.id)


def stored_percent(percent: int | None, status: ReportStatus | None) -> int | None:
    """What a report stores: the percent stated, 100 for "done", else nothing (never copied)."""
    if percent is None and status == ReportStatus.done:
        return 100
    return percent


class PlanMachine(RuleBasedStateMachine):
    """The plan's year as a random sequence of actions, checked against a model."""

    new_engine: Callable[[], Engine]
    versions: dict[str, ParsedPlan]

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.new_engine()
        self.now = START
        self.version: str | None = None
        self.contacts: set[str] = set()
        # (item number, contact name) -> (role, assignment deadline)
        self.assigned: dict[tuple[int, str], tuple[AssignmentRole, date | None]] = {}
        self.deadlines: dict[int, date] = {}
        self.reports: list[ModelReport] = []
        self.notices = 0
        self.unassigned: set[tuple[int, str]] = set()

    def teardown(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def live(self) -> list[int]:
        """The items in play that are in the document imported last."""
        assert self.version is not None
        return [i.number for i in self.versions[self.version].items if i.number in IN_PLAY]

    def _item(self, session: Session, number: int) -> WorkItem:
        return plans.find_item(session, plans.current_plan(session), str(number))

    # --- actions ---------------------------------------------------------------------------

    @initialize(
        version=st.sampled_from(VERSIONS),
        officials=st.sets(st.sampled_from([n for n, r in PEOPLE.items() if r == Role.official])),
    )
    def start(self, version: str, officials: set[str]) -> None:
        self.import_plan(version)
        for name in sorted(officials | {"赵主任"}):
            self.add_contact(name)

    @rule(version=st.sampled_from(VERSIONS))
    def import_plan(self, version: str) -> None:
        with self.session() as session:
            result = plans.import_plan(
                session, self.versions[version], source_file=None, actor=ACTOR
            )
            session.commit()
        assert result.created == (self.version is None)
        if self.version is not None:
            event(f"re-import {self.version} -> {version}")
        self.version = version

    @rule(name=st.sampled_from(sorted(PEOPLE)))
    def add_contact(self, name: str) -> None:
        with self.session() as session:
            if name in self.contacts:  # names are unique
                with pytest.raises(UserError):
                    contacts.add_contact(
                        session, name=name, unit="科", role=PEOPLE[name], actor=ACTOR
                    )
                return
            contacts.add_contact(session, name=name, unit="科", role=PEOPLE[name], actor=ACTOR)
            session.commit()
        self.contacts.add(name)

    @rule(
        data=st.data(),
        support=st.booleans(),
        deadline=st.none() | st.dates(date(2023, 6, 1), date(2023, 12, 31)),
    )
    def assign(self, data: st.DataObject, support: bool, deadline: date | None) -> None:
        number = data.draw(st.sampled_from(self.live), label="item")
        name = data.draw(st.sampled_from(sorted(self.contacts)), label="contact")
        self._assign(number, name, support=support, deadline=deadline)

    def _unassigned_live(self) -> list[tuple[int, str]]:
        return sorted(k for k in self.unassigned - set(self.assigned) if k[0] in self.live)

    @precondition(lambda self: self._unassigned_live())
    @rule(data=st.data(), support=st.booleans())
    def assign_again(self, data: st.DataObject, support: bool) -> None:
        """Someone unassigned from an item is assigned to it again."""
        number, name = data.draw(st.sampled_from(self._unassigned_live()), label="who")
        self._assign(number, name, support=support, deadline=None)

    def _assign(self, number: int, name: str, *, support: bool, deadline: date | None) -> None:
        role = AssignmentRole.support if support else AssignmentRole.lead
        with self.session() as session:
            _, created = assignments.assign(
                session,
                item=self._item(session, number),
                contact=contacts.find_contact(session, name),
                role=role,
                deadline=deadline,
                actor=ACTOR,
                now=self.now,
            )
            session.commit()
        before = self.assigned.get((number, name))
        assert created == (before is None)
        if created and (number, name) in self.unassigned:
            event("assign again after unassign")
        if before is not None and deadline is None:
            deadline = before[1]  # an update without a deadline keeps the one it had
        self.assigned[(number, name)] = (role, deadline)
        self.notices += created

    @rule(data=st.data())
    def unassign(self, data: st.DataObject) -> None:
        held = sorted(k for k in self.assigned if k[0] in self.live)
        anyone = st.tuples(st.sampled_from(self.live), st.sampled_from(sorted(self.contacts)))
        number, name = data.draw(st.sampled_from(held) | anyone if held else anyone)
        with self.session() as session:
            item = self._item(session, number)
            person = contacts.find_contact(session, name)
            if (number, name) not in self.assigned:
                with pytest.raises(UserError):
                    assignments.unassign(session, item=item, contact=person, actor=ACTOR)
                return
            assignments.unassign(session, item=item, contact=person, actor=ACTOR)
            session.commit()
        del self.assigned[(number, name)]
        self.unassigned.add((number, name))

    @rule(data=st.data(), deadline=st.dates(date(2023, 6, 1), date(2023, 12, 31)))
    def set_deadline(self, data: st.DataObject, deadline: date) -> None:
        number = data.draw(st.sampled_from(self.live), label="item")
        with self.session() as session:
            told = assignments.set_deadline(
                session,
                item=self._item(session, number),
                deadline=deadline,
                actor=ACTOR,
                now=self.now,
            )
            session.commit()
        owners = {name for n, name in self.assigned if n == number}
        assert {c.name for c in told} == owners
        self.deadlines[number] = deadline
        self.notices += len(owners)

    def _reportable(self) -> list[tuple[int, str]]:
        return sorted(k for k in self.assigned if k[0] in self.live)

    @precondition(lambda self: self._reportable())
    @rule(data=st.data(), percent=PERCENTS, status=STATUSES, with_value=st.booleans())
    def report(
        self,
        data: st.DataObject,
        percent: int | None,
        status: ReportStatus | None,
        with_value: bool,
    ) -> None:
        number, name = data.draw(st.sampled_from(self._reportable()), label="who")
        self._record(number, name, percent, status, with_value=with_value, entered_by=None)

    @precondition(lambda self: self._reportable())
    @rule(data=st.data(), percent=PERCENTS, status=STATUSES)
    def report_on_behalf(
        self, data: st.DataObject, percent: int | None, status: ReportStatus | None
    ) -> None:
        """An admin enters a report received by phone."""
        number, name = data.draw(st.sampled_from(self._reportable()), label="who")
        self._record(number, name, percent, status, with_value=False, entered_by="赵主任")

    @precondition(lambda self: self.reports and self._last_reportable())
    @rule(percent=PERCENTS, status=STATUSES)
    def report_again(self, percent: int | None, status: ReportStatus | None) -> None:
        """The last reporter sends another report on the same item (a correction, if soon)."""
        number, name = self._last_reportable()
        self._record(number, name, percent, status, with_value=False, entered_by=None)

    def _last_reportable(self) -> tuple[int, str] | None:
        last = max(self.reports, key=lambda r: r.order)
        key = (last.item, last.contact)
        return key if key in self._reportable() else None

    def _record(
        self,
        number: int,
        name: str,
        percent: int | None,
        status: ReportStatus | None,
        *,
        with_value: bool,
        entered_by: str | None,
    ) -> None:
        with self.session() as session:
            item = self._item(session, number)
            targets = reports.item_targets(session, item)
            values = [(targets[0], 42.0)] if with_value and targets else []
            report = reports.record_report(
                session,
                item=item,
                contact=contacts.find_contact(session, name),
                now=self.now,
                percent=percent,
                status=status,
                text="进展",
                values=values,
                source="cli" if entered_by else "chat",
                entered_by=contacts.find_contact(session, entered_by) if entered_by else None,
            )
            session.commit()
        assert report.id is not None
        new = ModelReport(
            id=report.id,
            item=number,
            contact=name,
            percent=stored_percent(percent, status),
            created_at=self.now,
            entered_by=entered_by,
            values=len(values),
        )
        standing = [r for r in self.reports if r.live and (r.item, r.contact) == (number, name)]
        if standing:
            earlier = max(standing, key=lambda r: r.order)
            if self.now - earlier.created_at <= UNDO_WINDOW:
                earlier.superseded_by = new.id  # a correction
                event("correction")
        if entered_by:
            event("report on behalf")
        self.reports.append(new)

    @rule(data=st.data())
    def undo(self, data: st.DataObject) -> None:
        recent = sorted({r.contact for r in self.reports if self.now - r.created_at <= UNDO_WINDOW})
        anyone = st.sampled_from(sorted(self.contacts))
        name = data.draw(st.sampled_from(recent) if recent else anyone, label="contact")
        theirs = [r for r in self.reports if r.contact == name and not r.withdrawn]
        newest = max(theirs, key=lambda r: r.order) if theirs else None
        with self.session() as session:
            person = contacts.find_contact(session, name)
            if newest is None or self.now - newest.created_at > UNDO_WINDOW:
                with pytest.raises(UserError):
                    reports.undo_last(session, person, self.now)
                event("undo refused")
                return
            report, _ = reports.undo_last(session, person, self.now)
            session.commit()
        assert report.id == newest.id
        newest.withdrawn = True
        corrected = newest.id in {r.superseded_by for r in self.reports}
        event("undo of a correction" if corrected else "undo")
        for r in self.reports:
            if r.superseded_by == newest.id:
                r.superseded_by = None  # taking a correction back restores what it replaced

    @rule(minutes=st.sampled_from([0, 1, 5, 10, 11, 60, 24 * 60]))
    def wait(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    # --- the database against the model -----------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        with self.session() as session:
            self._check_items(session)
            self._check_assignments(session)
            self._check_reports(session)
            self._check_outbox(session)

    def _check_items(self, session: Session) -> None:
        assert self.version is not None
        plan = plans.current_plan(session)
        live = [(i.number, i.title) for i in plans.live_items(session, plan)]
        assert live == [(i.number, i.title) for i in self.versions[self.version].items]
        stored = {
            i.number: i.deadline
            for i in session.exec(select(WorkItem).where(col(WorkItem.deadline).is_not(None)))
        }
        assert stored == self.deadlines

    def _check_assignments(self, session: Session) -> None:
        rows = session.execute(
            sa.select(
                col(WorkItem.number),
                col(Contact.name),
                col(Assignment.role),
                col(Assignment.deadline),
            )
            .select_from(Assignment)
            .join(WorkItem, col(WorkItem.id) == Assignment.item_id)
            .join(Contact, col(Contact.id) == Assignment.contact_id)
        ).all()
        assert {(n, c): (AssignmentRole(r), d) for n, c, r, d in rows} == self.assigned
        assert len(rows) == len(self.assigned)
        names = set(session.exec(select(Contact.name)).all())
        assert names == self.contacts

    def _check_reports(self, session: Session) -> None:
        entered = aliased(Contact)
        rows = session.execute(
            sa.select(
                col(Report.id),
                col(WorkItem.number),
                col(Contact.name),
                col(Report.percent),
                col(entered.name),
                col(Report.superseded_by_id),
                col(Report.withdrawn_at),
            )
            .join(WorkItem, col(WorkItem.id) == Report.item_id)
            .join(Contact, col(Contact.id) == Report.contact_id)
            .outerjoin(entered, col(entered.id) == Report.entered_by_id)
        ).all()
        model = {r.id: r for r in self.reports}
        assert {row[0] for row in rows} == set(model)
        for rid, number, name, percent, by, superseded_by, withdrawn_at in rows:
            expected = model[rid]
            assert (number, name, by) == (expected.item, expected.contact, expected.entered_by)
            assert percent == expected.percent, rid
            assert superseded_by == expected.superseded_by, rid
            assert (withdrawn_at is not None) == expected.withdrawn, rid

        def kind(r: ModelReport) -> str:
            return "withdrawn" if r.withdrawn else "live" if r.live else "superseded"

        stored_kinds = Counter(
            "withdrawn" if w is not None else "superseded" if s is not None else "live"
            for *_, s, w in rows
        )
        assert stored_kinds == Counter(kind(r) for r in self.reports)
        assert len(session.exec(select(TargetValue.id)).all()) == sum(
            r.values for r in self.reports
        )
        # each item's latest known percent: that of its newest live report that states one
        newest: dict[int, tuple[tuple[datetime, int], int]] = {}
        for r in self.reports:
            if (
                r.live
                and r.percent is not None
                and (r.item not in newest or r.order > newest[r.item][0])
            ):
                newest[r.item] = (r.order, r.percent)
        items = session.exec(
            select(WorkItem.id, WorkItem.number).where(col(WorkItem.number).in_(IN_PLAY))
        ).all()  # reports are on these only (the ids above say so)
        figures = {n: reports.latest_known_percent(session, i) for i, n in items if i is not None}
        assert {n: p for n, p in figures.items() if p is not None} == {
            n: p for n, (_, p) in newest.items()
        }

    def _check_outbox(self, session: Session) -> None:
        rows = session.exec(select(Outbox.dedupe_key, Outbox.kind)).all()
        assert len({key for key, _ in rows}) == len(rows)
        assert sum(kind == "notice" for _, kind in rows) == self.notices  # one per change


@pytest.fixture
def fresh_engines(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Engine]]:
    """Makes an engine on an empty, migrated database, a new one for each example."""
    made = 0

    def new_engine() -> Engine:
        nonlocal made
        made += 1
        if db_url.startswith("sqlite"):
            path = tmp_path / f"example-{made}.db"
            shutil.copy(request.getfixturevalue("_sqlite_template"), path)
            return db.make_engine(f"sqlite:///{path}")
        _truncate_all(db_url)
        return db.make_engine(db_url)

    yield new_engine


def test_the_plan_year_matches_the_model(
    fresh_engines: Callable[[], Engine], plan_versions: dict[str, ParsedPlan]
) -> None:
    class Machine(PlanMachine):
        new_engine = staticmethod(fresh_engines)
        versions = plan_versions

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            database=None,  # nothing written into the checkout
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
