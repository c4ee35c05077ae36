"""A model-based test: random sequences of admin and official actions against a small model.

Hypothesis drives the services (plans, contacts, assignments, reports, tasks) through imports
and re-imports of the sample plan (要点) and two variants, the 民生 plan beside it (imported,
then closed at year end, its unfinished items carried over into 要点 or not), 交办 tasks (handed
down by a leader or the office, reported done, reopened), contacts, assignments and
unassignments, deadlines, reports, corrections, undo and reports on someone's behalf. After
every step the database is compared with an in-memory model of what should be there. Each
step runs in its own session and commits, as a chat update or a CLI command does.

The model keys items by (plan code, number): 民生9 is not 要点9.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
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
from sqlmodel import Session, SQLModel, col, select

from bot import db
from bot.i18n import Translator, UserError
from bot.importer.model import ParsedPlan
from bot.importer.parse import parse_plan_file
from bot.models import (
    Assignment,
    AssignmentRole,
    AuditLog,
    Contact,
    Outbox,
    Plan,
    PlanKind,
    Report,
    ReportStatus,
    Role,
    TargetValue,
    WorkItem,
)
from bot.services import assignments, contacts, plans, reports, tasks
from tests.conftest import SAMPLE_PLAN, _truncate_all

ACTOR = "test"
START = datetime(2023, 6, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
UNDO_WINDOW = timedelta(minutes=10)  # corrections and /undo (README)
VERSIONS = ("sample", "edited", "longer")
SECOND_PLAN = SAMPLE_PLAN.parent / "jiangmen-edu-2023-minsheng.yaml"  # items 1, 2, 3, 9
MAIN, SECOND, TASKS = "要点", "民生", "J"  # the plans' codes
# The items of 要点 the sequences act on: few, so that people meet on them, including the ones
# the variants change (16 retitled, 27 gone in "edited", 28 only in "longer"); 9 has targets
# (and so has 民生1).
IN_PLAY = (2, 9, 16, 27, 28)
PERCENTS = st.none() | st.integers(0, 100)
STATUSES = st.none() | st.sampled_from(list(ReportStatus))
DATES = st.dates(date(2023, 6, 1), date(2023, 12, 31))
LEADER, ADMIN = "王局长", "赵主任"
PEOPLE = {
    "张敏": Role.official,
    "李四": Role.official,
    "王五": Role.official,
    ADMIN: Role.admin,
    LEADER: Role.leader,
}
T = Translator("zh-CN")

Ref = tuple[str, int]  # an item: (plan code, number)


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


@pytest.fixture(scope="module")
def second_plan() -> ParsedPlan:
    """The 民生 plan, a second plan beside 要点."""
    parsed = parse_plan_file(SECOND_PLAN)
    assert [i.number for i in parsed.items] == [1, 2, 3, 9]
    return parsed


@dataclass
class ModelReport:
    """A report as the model expects it to be stored."""

    id: int
    item: Ref
    contact: str
    percent: int | None
    status: ReportStatus | None
    created_at: datetime
    entered_by: str | None
    values: int
    kind: str = "progress"
    superseded_by: int | None = None
    withdrawn: bool = False

    @property
    def live(self) -> bool:
        """Neither corrected (nor reopened) nor taken back."""
        return self.superseded_by is None and not self.withdrawn

    @property
    def key(self) -> tuple[Ref, str]:
        """Whose report on what: a correction is of the sender's own report on the item."""
        return (self.item, self.contact)

    @property
    def order(self) -> tuple[datetime, int]:
        """Newest last, as the database orders reports (time, then id)."""
        return (self.created_at, self.id)


@dataclass(frozen=True)
class ModelTask:
    """A 交办 task: by whom (None: the office) and its note."""

    title: str
    by: str | None
    note: str


def stored(
    percent: int | None, status: ReportStatus | None
) -> tuple[int | None, ReportStatus | None]:
    """What a report stores: the percent stated, 100 for a bare "done", else nothing (never
    copied); the status stated, or for a bare percent done at 100 and in progress below."""
    if percent is None and status == ReportStatus.done:
        return 100, status
    if status is None and percent is not None:
        return percent, ReportStatus.done if percent == 100 else ReportStatus.in_progress
    return percent, status


class PlanMachine(RuleBasedStateMachine):
    """The year of two plans and the tasks as a random sequence of actions, checked against a
    model."""

    new_engine: Callable[[], Engine]
    versions: dict[str, ParsedPlan]
    second: ParsedPlan

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.new_engine()
        self.now = START
        self.version: str | None = None  # 要点's document, as imported last
        self.main_numbers: set[int] = set()  # every number 要点 has had (removed items too)
        self.second_imported = False
        self.closed: dict[str, datetime] = {}  # plan code -> when it was closed
        # the closed plan's id and rows as they were when it closed
        self.frozen: tuple[int, list[list[Any]]] | None = None
        self.carried: dict[Ref, Ref] = {}  # a copy in 要点 -> the closed plan's item
        self.tasks: dict[int, ModelTask] = {}
        self.contacts: set[str] = set()
        # (item, contact name) -> (role, assignment deadline)
        self.assigned: dict[tuple[Ref, str], tuple[AssignmentRole, date | None]] = {}
        self.deadlines: dict[Ref, date] = {}
        self.reports: list[ModelReport] = []
        self.notices: Counter[tuple[str, str]] = Counter()  # (message, to whom)
        self.unassigned: set[tuple[Ref, str]] = set()

    def teardown(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def second_open(self) -> bool:
        return self.second_imported and SECOND not in self.closed

    @property
    def live(self) -> list[Ref]:
        """The items the rules act on: those in play of 要点's document and any carried into
        it, 民生's while it is open, and the tasks. A closed plan's items are read-only."""
        assert self.version is not None
        refs = [(MAIN, i.number) for i in self.versions[self.version].items if i.number in IN_PLAY]
        refs += sorted(self.carried)
        if self.second_open:
            refs += [(SECOND, i.number) for i in self.second.items]
        return refs + [(TASKS, n) for n in sorted(self.tasks)]

    def _item(self, session: Session, ref: Ref) -> WorkItem:
        code, number = ref
        return plans.find_item(session, plans.plan_by_code(session, code), str(number))

    def _title(self, ref: Ref) -> str:
        """The title of an item of 民生 (what a copy carried over from it is called)."""
        assert ref[0] == SECOND
        return next(i.title for i in self.second.items if i.number == ref[1])

    def _done(self, ref: Ref) -> bool:
        """Done: its newest standing report says done, or its latest figure is 100% (a reopen
        after either makes it open again)."""
        standing = [r for r in self.reports if r.item == ref and r.live]
        if not standing:
            return False
        newest = max(standing, key=lambda r: r.order)
        if newest.kind == "reopen":
            return False
        if newest.status == ReportStatus.done:
            return True
        figures = [r for r in standing if r.percent is not None]
        return bool(figures) and max(figures, key=lambda r: r.order).percent == 100

    # --- actions ---------------------------------------------------------------------------

    @initialize(
        version=st.sampled_from(VERSIONS),
        officials=st.sets(st.sampled_from([n for n, r in PEOPLE.items() if r == Role.official])),
        second=st.booleans(),
        task=st.booleans(),
    )
    def start(self, version: str, officials: set[str], second: bool, task: bool) -> None:
        self.import_plan(version)
        if second:  # 民生 from the start (else by the rule below, or never)
            self.import_second()
        for name in sorted(officials | {ADMIN, LEADER}):  # a leader hands tasks down
            self.add_contact(name)
        if task:  # and a task from the start
            self._create_task([min(officials, default=ADMIN)], LEADER, date(2023, 6, 30), "")

    # A re-import of 要点 after items were carried into it would take them away (see the
    # xfail test at the end): none then.
    @precondition(lambda self: not self.carried)
    @rule(version=st.sampled_from(VERSIONS))
    def import_plan(self, version: str) -> None:
        with self.session() as session:
            result = plans.import_plan(
                session, self.versions[version], source_file=None, actor=ACTOR
            )
            session.commit()
        assert result.created == (self.version is None)
        assert result.plan.code == MAIN
        if self.version is not None:
            event(f"re-import {self.version} -> {version}")
        self.version = version
        self.main_numbers |= {i.number for i in self.versions[version].items}

    @rule(data=st.data())
    def import_second(self, data: st.DataObject | None = None) -> None:
        """The 民生 plan is imported (again); once it is closed, that is refused, and so is a
        report on one of its items."""
        with self.session() as session:
            if SECOND in self.closed:
                assert data is not None
                with pytest.raises(UserError) as caught:
                    plans.import_plan(session, self.second, source_file=None, actor=ACTOR)
                assert caught.value.key == "plan.closed"
                self._report_on_closed(session, data)
                session.commit()  # nothing to commit: the invariant sees the plan unchanged
                event("re-import of a closed plan refused")
                return
            result = plans.import_plan(session, self.second, source_file=None, actor=ACTOR)
            session.commit()
        assert result.created == (not self.second_imported)
        assert result.plan.code == SECOND and not result.removed
        self.second_imported = True

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

    @rule(data=st.data(), support=st.booleans(), deadline=st.none() | DATES)
    def assign(self, data: st.DataObject, support: bool, deadline: date | None) -> None:
        ref = data.draw(st.sampled_from(self.live), label="item")
        name = data.draw(st.sampled_from(sorted(self.contacts)), label="contact")
        self._assign(ref, name, support=support, deadline=deadline)

    def _unassigned_live(self) -> list[tuple[Ref, str]]:
        live = set(self.live)
        return sorted(k for k in self.unassigned - set(self.assigned) if k[0] in live)

    @precondition(lambda self: self._unassigned_live())
    @rule(data=st.data(), support=st.booleans())
    def assign_again(self, data: st.DataObject, support: bool) -> None:
        """Someone unassigned from an item is assigned to it again."""
        ref, name = data.draw(st.sampled_from(self._unassigned_live()), label="who")
        self._assign(ref, name, support=support, deadline=None)

    def _assign(self, ref: Ref, name: str, *, support: bool, deadline: date | None) -> None:
        role = AssignmentRole.support if support else AssignmentRole.lead
        with self.session() as session:
            _, created = assignments.assign(
                session,
                item=self._item(session, ref),
                contact=contacts.find_contact(session, name),
                role=role,
                deadline=deadline,
                actor=ACTOR,
                now=self.now,
            )
            session.commit()
        before = self.assigned.get((ref, name))
        assert created == (before is None)
        if created and (ref, name) in self.unassigned:
            event("assign again after unassign")
        if before is not None and deadline is None:
            deadline = before[1]  # an update without a deadline keeps the one it had
        self.assigned[(ref, name)] = (role, deadline)
        if created:
            self.notices[("assign.notice", name)] += 1

    @rule(data=st.data())
    def unassign(self, data: st.DataObject) -> None:
        live = set(self.live)
        held = sorted(k for k in self.assigned if k[0] in live)
        anyone = st.tuples(st.sampled_from(self.live), st.sampled_from(sorted(self.contacts)))
        ref, name = data.draw(st.sampled_from(held) | anyone if held else anyone)
        with self.session() as session:
            item = self._item(session, ref)
            person = contacts.find_contact(session, name)
            if (ref, name) not in self.assigned:
                with pytest.raises(UserError):
                    assignments.unassign(session, item=item, contact=person, actor=ACTOR)
                return
            assignments.unassign(session, item=item, contact=person, actor=ACTOR)
            session.commit()
        del self.assigned[(ref, name)]
        self.unassigned.add((ref, name))

    @rule(data=st.data(), deadline=DATES)
    def set_deadline(self, data: st.DataObject, deadline: date) -> None:
        ref = data.draw(st.sampled_from(self.live), label="item")
        with self.session() as session:
            told = assignments.set_deadline(
                session,
                item=self._item(session, ref),
                deadline=deadline,
                actor=ACTOR,
                now=self.now,
            )
            session.commit()
        owners = {name for r, name in self.assigned if r == ref}
        assert {c.name for c in told} == owners
        self.deadlines[ref] = deadline
        self.notices.update(("deadline.notice", name) for name in owners)

    # --- 交办 tasks ---------------------------------------------------------------------------

    @rule(
        data=st.data(),
        by=st.sampled_from([LEADER, None]),
        deadline=DATES,
        note=st.sampled_from(["", "请形成书面报告"]),
    )
    def create_task(self, data: st.DataObject, by: str | None, deadline: date, note: str) -> None:
        """A leader (or the office) hands a task down to one or two owners, the first leads."""
        names = sorted(self.contacts)
        owners = data.draw(
            st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True), label="owners"
        )
        self._create_task(owners, by, deadline, note)

    def _create_task(self, owners: list[str], by: str | None, deadline: date, note: str) -> None:
        number = len(self.tasks) + 1
        spec = tasks.TaskSpec(
            title=f"交办事项{number}", owners=tuple(owners), deadline=deadline, note=note
        )
        with self.session() as session:
            leader = contacts.find_contact(session, by) if by else None
            item, told = tasks.create_task(session, spec, by=leader, now=self.now, actor=ACTOR, t=T)
            session.commit()
        assert (item.number, item.label) == (number, f"{TASKS}{number}")
        assert [c.name for c in told] == owners
        ref = (TASKS, number)
        self.tasks[number] = ModelTask(spec.title, by, note)
        self.deadlines[ref] = deadline
        for n, name in enumerate(owners):
            role = AssignmentRole.lead if n == 0 else AssignmentRole.support
            self.assigned[(ref, name)] = (role, None)
            self.notices[("task.told_owner", name)] += 1

    @precondition(lambda self: self._reportable())
    @rule(data=st.data(), how=st.sampled_from(["办结", "100%", "进展"]), percent=PERCENTS)
    def report_done(self, data: st.DataObject, how: str, percent: int | None) -> None:
        """An owner reports an item, a task as often as not, 办结 (done), 100%, or progress."""
        anything = st.sampled_from(self._reportable())
        on_tasks = [k for k in self._reportable() if k[0][0] == TASKS]
        who = st.sampled_from(on_tasks) | anything if on_tasks else anything
        ref, name = data.draw(who, label="who")
        if how == "办结":
            percent, status = None, ReportStatus.done
        else:
            percent, status = (100 if how == "100%" else percent), None
        self._record(ref, name, percent, status, with_value=False, entered_by=None)

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), reason=st.sampled_from(["报告缺少整改清单", "再查一次", " "]))
    def reopen(self, data: st.DataObject, reason: str) -> None:
        """Whoever handed a task down (or an admin) reopens it; anything else is refused."""
        handed = [(TASKS, n) for n in sorted(self.tasks)]
        done = [ref for ref in handed if self._done(ref)]
        choices = [st.sampled_from(done)] * 3 if done else []  # mostly a done task
        choices += [st.sampled_from(handed), st.sampled_from(self.live)]
        ref = data.draw(st.one_of(choices), label="item")
        task = self.tasks[ref[1]] if ref[0] == TASKS else None
        likely = st.sampled_from([task.by or ADMIN if task else ADMIN])
        by = data.draw(
            st.one_of(likely, likely, st.sampled_from(sorted(self.contacts))), label="by"
        )
        if task is None:
            refusal: str | None = "task.reopen_not_task"
        elif not reason.strip():
            refusal = "task.reopen_reason_needed"
        elif PEOPLE[by] != Role.admin and task.by != by:
            refusal = "task.reopen_not_yours"
        elif not self._done(ref):
            refusal = "task.reopen_not_done"
        else:
            refusal = None
        with self.session() as session:
            item = self._item(session, ref)
            person = contacts.find_contact(session, by)

            def reopen() -> list[Contact]:
                return tasks.reopen(
                    session,
                    item,
                    by=person,
                    reason=reason,
                    now=self.now,
                    actor=ACTOR,
                    admin=person.role == Role.admin,
                )

            if refusal is not None:
                before = self._footprint(session)
                with pytest.raises(UserError) as caught:
                    reopen()
                assert caught.value.key == refusal
                assert self._footprint(session) == before  # nothing changed
                session.commit()
                event(f"reopen refused: {refusal}")
                return
            told = reopen()
            reopened = session.exec(
                select(Report.id)
                .where(Report.item_id == item.id, Report.kind == "reopen")
                .order_by(col(Report.id).desc())
            ).first()
            session.commit()
        owners = sorted(name for r, name in self.assigned if r == ref)
        assert sorted(c.name for c in told) == owners
        assert reopened is not None and task is not None
        event("reopen by an admin" if by != task.by else "reopen by the 交办人")
        self._add_report(
            ModelReport(
                id=reopened,
                item=ref,
                contact=by,
                percent=None,
                status=ReportStatus.in_progress,
                created_at=self.now,
                entered_by=None,
                values=0,
                kind="reopen",
            )
        )
        for r in self.reports:  # the 办结 reports stop counting
            is_done = r.status == ReportStatus.done or r.percent == 100
            if r.item == ref and r.live and r.id != reopened and is_done:
                r.superseded_by = reopened
        self.notices.update(("task.reopened_to_owner", name) for name in owners)

    def _footprint(self, session: Session) -> Any:
        """What a refused action must leave as it was (pending changes flushed first)."""
        session.flush()
        return (
            session.execute(
                sa.select(
                    col(Report.id), col(Report.superseded_by_id), col(Report.withdrawn_at)
                ).order_by(col(Report.id))
            ).all(),
            session.scalar(sa.select(sa.func.count()).select_from(Outbox)),
            session.scalar(sa.select(sa.func.count()).select_from(AuditLog)),
        )

    # --- closing 民生 ------------------------------------------------------------------------

    def _second_worked_on(self) -> bool:
        return self.second_open and any(ref[0] == SECOND for ref, _ in self.assigned)

    @precondition(_second_worked_on)  # not before anyone is on it (closing it is the end)
    @rule(carry=st.booleans())
    def close_second(self, carry: bool) -> None:
        """民生 is closed at year end, its unfinished items carried over into 要点 or not."""
        unfinished = [
            (SECOND, i.number) for i in self.second.items if not self._done((SECOND, i.number))
        ]
        with self.session() as session:
            plan = plans.plan_by_code(session, SECOND)
            items = plans.live_items(session, plan)
            left = [i for i in items if not reports.item_done(session, i)]
            assert [(SECOND, i.number) for i in left] == unfinished
            result = plans.close_plan(
                session,
                plan,
                now=self.now,
                actor=ACTOR,
                unfinished=left,
                carry_to=plans.plan_by_code(session, MAIN) if carry else None,
            )
            session.commit()
        top = max(self.main_numbers)
        copies = [(MAIN, top + n) for n in range(1, len(unfinished) + 1)] if carry else []
        assert [((SECOND, o.number), (MAIN, n.number)) for o, n in result.carried] == list(
            zip(unfinished, copies, strict=False)
        )
        event(f"民生 closed, {len(copies)} carried over" if carry else "民生 closed")
        self.closed[SECOND] = self.now
        for old, new in zip(unfinished, copies, strict=False):
            self.carried[new] = old
            self.main_numbers.add(new[1])
            for (ref, name), (role, _) in list(self.assigned.items()):
                if ref == old:
                    self.assigned[(new, name)] = (role, None)  # no deadline (last year's)
                    event("carried over with its assignments")
        with self.session() as session:
            closed_id = plans.plan_by_code(session, SECOND).id or 0
            self.frozen = (closed_id, self._plan_rows(session, closed_id))

    def _report_on_closed(self, session: Session, data: st.DataObject) -> None:
        """A report on an item of the closed plan is refused."""
        number = data.draw(st.sampled_from([i.number for i in self.second.items]), label="item")
        name = data.draw(st.sampled_from(sorted(self.contacts)), label="contact")
        item = plans.find_item(session, plans.plan_by_code(session, SECOND), str(number))
        with pytest.raises(UserError) as caught:
            reports.record_report(
                session,
                item=item,
                contact=contacts.find_contact(session, name),
                now=self.now,
                status=ReportStatus.done,
            )
        assert caught.value.key == "plan.closed"

    def _plan_rows(self, session: Session, plan_id: int) -> list[list[Any]]:
        """A plan and every row of its items, as stored."""
        return [
            sorted(session.execute(q, {"plan_id": plan_id}).all(), key=lambda r: r.id)
            for q in _OF_PLAN
        ]

    # --- reports -----------------------------------------------------------------------------

    def _reportable(self) -> list[tuple[Ref, str]]:
        live = set(self.live)
        return sorted(k for k in self.assigned if k[0] in live)

    @precondition(lambda self: self._reportable())
    @rule(data=st.data(), percent=PERCENTS, status=STATUSES, with_value=st.booleans())
    def report(
        self,
        data: st.DataObject,
        percent: int | None,
        status: ReportStatus | None,
        with_value: bool,
    ) -> None:
        ref, name = data.draw(st.sampled_from(self._reportable()), label="who")
        self._record(ref, name, percent, status, with_value=with_value, entered_by=None)

    @precondition(lambda self: self._reportable())
    @rule(data=st.data(), percent=PERCENTS, status=STATUSES)
    def report_on_behalf(
        self, data: st.DataObject, percent: int | None, status: ReportStatus | None
    ) -> None:
        """An admin enters a report received by phone."""
        ref, name = data.draw(st.sampled_from(self._reportable()), label="who")
        self._record(ref, name, percent, status, with_value=False, entered_by=ADMIN)

    @precondition(lambda self: self.reports and self._last_reportable())
    @rule(percent=PERCENTS, status=STATUSES)
    def report_again(self, percent: int | None, status: ReportStatus | None) -> None:
        """The last reporter sends another report on the same item (a correction, if soon)."""
        last = self._last_reportable()
        assert last is not None
        self._record(*last, percent, status, with_value=False, entered_by=None)

    def _last_reportable(self) -> tuple[Ref, str] | None:
        last = max(self.reports, key=lambda r: r.order)
        key = (last.item, last.contact)
        return key if key in self._reportable() else None

    def _record(
        self,
        ref: Ref,
        name: str,
        percent: int | None,
        status: ReportStatus | None,
        *,
        with_value: bool,
        entered_by: str | None,
    ) -> None:
        """Record a report as the chat does: record_report, then after_reports."""
        with self.session() as session:
            item = self._item(session, ref)
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
            tasks.after_reports(session, [report], [item], now=self.now)
            session.commit()
        assert report.id is not None
        percent, status = stored(percent, status)
        self._add_report(
            ModelReport(
                id=report.id,
                item=ref,
                contact=name,
                percent=percent,
                status=status,
                created_at=self.now,
                entered_by=entered_by,
                values=len(values),
            )
        )
        if entered_by:
            event("report on behalf")
        task = self.tasks.get(ref[1]) if ref[0] == TASKS else None
        if task is not None and status == ReportStatus.done:
            event("task reported done")
            if task.by is not None:
                self.notices[("task.done_to_leader", task.by)] += 1

    def _add_report(self, new: ModelReport) -> None:
        """A new report; within the undo window it corrects the sender's standing one."""
        standing = [r for r in self.reports if r.live and (r.item, r.contact) == new.key]
        if standing:
            earlier = max(standing, key=lambda r: r.order)
            if self.now - earlier.created_at <= UNDO_WINDOW:
                earlier.superseded_by = new.id  # a correction
                event("correction")
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
            if newest.item[0] in self.closed:
                # The newest report is on an item of a plan closed since: read-only (see the
                # xfail test at the end), not undone here.
                event("undo on a closed plan skipped")
                return
            report, _ = reports.undo_last(session, person, self.now)
            session.commit()
        assert report.id == newest.id
        newest.withdrawn = True
        corrected = newest.id in {r.superseded_by for r in self.reports}
        if newest.kind == "reopen":
            event("undo of a reopen")
        else:
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
            self._check_plans(session)
            self._check_items(session)
            self._check_assignments(session)
            self._check_reports(session)
            self._check_outbox(session)

    def _check_plans(self, session: Session) -> None:
        rows = session.execute(_PLANS).all()
        assert len({code.casefold() for code, _, _ in rows}) == len(rows)  # codes are unique
        expected: dict[str, tuple[PlanKind, datetime | None]] = {MAIN: (PlanKind.plan, None)}
        if self.second_imported:
            expected[SECOND] = (PlanKind.plan, self.closed.get(SECOND))
        if self.tasks:
            expected[TASKS] = (PlanKind.tasks, None)
        assert {code: (PlanKind(kind), at) for code, kind, at in rows} == expected
        assert [p.code for p in plans.active_plans(session)] == [
            code for code, (_, at) in expected.items() if at is None
        ]
        if self.frozen is not None:  # nothing of a closed plan changes
            closed_id, as_closed = self.frozen
            assert self._plan_rows(session, closed_id) == as_closed

    def _check_items(self, session: Session) -> None:
        assert self.version is not None
        main = [(i.number, i.title) for i in self.versions[self.version].items]
        main += [(new[1], self._title(old)) for new, old in self.carried.items()]
        live = [(i.number, i.title) for i in plans.live_items(session, plans.current_plan(session))]
        assert live == sorted(main)
        rows = session.execute(_ITEMS).all()
        second = [(n, title) for c, n, title, gone, *_ in rows if c == SECOND and gone is None]
        assert second == (
            [(i.number, i.title) for i in self.second.items] if self.second_imported else []
        )
        assert {(c, n): d for c, n, _, _, d, *_ in rows if d is not None} == self.deadlines
        assert {(c, n): (c0, n0) for c, n, *_, c0, n0 in rows if n0 is not None} == self.carried
        handed = {n: (title, b, note) for c, n, title, _, _, note, b, *_ in rows if c == TASKS}
        assert handed == {n: (t.title, t.by, t.note) for n, t in self.tasks.items()}
        others = {(note, b) for c, _, _, _, _, note, b, *_ in rows if c != TASKS}
        assert others <= {("", None)}  # a 交办人 and a note only on tasks

    def _check_assignments(self, session: Session) -> None:
        rows = session.execute(_ASSIGNMENTS).all()
        assert {((p, n), c): (AssignmentRole(r), d) for p, n, c, r, d in rows} == self.assigned
        assert len(rows) == len(self.assigned)
        assert set(session.scalars(_CONTACTS)) == self.contacts

    def _check_reports(self, session: Session) -> None:
        rows = session.execute(_REPORTS).all()
        model = {r.id: r for r in self.reports}
        assert {row[0] for row in rows} == set(model)
        for rid, code, number, name, percent, status, kind, by, superseded_by, withdrawn in rows:
            expected = model[rid]
            assert ((code, number), name, by) == (
                expected.item,
                expected.contact,
                expected.entered_by,
            )
            assert (percent, status, kind) == (expected.percent, expected.status, expected.kind)
            assert superseded_by == expected.superseded_by, rid
            assert (withdrawn is not None) == expected.withdrawn, rid

        def state(r: ModelReport) -> str:
            return "withdrawn" if r.withdrawn else "live" if r.live else "superseded"

        stored_states = Counter(
            "withdrawn" if w is not None else "superseded" if s is not None else "live"
            for *_, s, w in rows
        )
        assert stored_states == Counter(state(r) for r in self.reports)
        assert session.scalar(_VALUES) == sum(r.values for r in self.reports)
        # per item reported on: its latest known percent (that of its newest standing report
        # that states one) and whether it is done; items without reports have neither
        newest: dict[Ref, tuple[tuple[datetime, int], int]] = {}
        for r in self.reports:
            if (
                r.live
                and r.percent is not None
                and (r.item not in newest or r.order > newest[r.item][0])
            ):
                newest[r.item] = (r.order, r.percent)
        reported = session.exec(_REPORTED).all()
        assert len(reported) == len({r.item for r in self.reports})
        figures = {
            (code, i.number): reports.latest_known_percent(session, i.id or 0)
            for i, code in reported
        }
        assert {ref: p for ref, p in figures.items() if p is not None} == {
            ref: p for ref, (_, p) in newest.items()
        }
        done = {(code, i.number): reports.item_done(session, i) for i, code in reported}
        assert done == {ref: self._done(ref) for ref in done}

    def _check_outbox(self, session: Session) -> None:
        rows = session.execute(_NOTICES).all()
        assert len({key for key, *_ in rows}) == len(rows)
        told = Counter((p["message"], name) for _, kind, p, name in rows if kind == "notice")
        assert told == self.notices  # one per change


# The invariant's reads, built once (building a statement costs more than running it).
_PLANS = sa.select(col(Plan.code), col(Plan.kind), col(Plan.closed_at))
_BY, _EARLIER, _EARLIER_PLAN = aliased(Contact), aliased(WorkItem), aliased(Plan)
_ITEMS = (
    sa.select(
        col(Plan.code),
        col(WorkItem.number),
        col(WorkItem.title),
        col(WorkItem.removed_at),
        col(WorkItem.deadline),
        col(WorkItem.note),
        col(_BY.name),
        col(_EARLIER_PLAN.code),
        col(_EARLIER.number),
    )
    .select_from(WorkItem)
    .join(Plan, col(Plan.id) == WorkItem.plan_id)
    .outerjoin(_BY, col(_BY.id) == WorkItem.assigned_by_id)
    .outerjoin(_EARLIER, col(_EARLIER.id) == WorkItem.carried_from_id)
    .outerjoin(_EARLIER_PLAN, col(_EARLIER_PLAN.id) == _EARLIER.plan_id)
    .order_by(col(Plan.id), col(WorkItem.number))
)
_ASSIGNMENTS = (
    sa.select(
        col(Plan.code),
        col(WorkItem.number),
        col(Contact.name),
        col(Assignment.role),
        col(Assignment.deadline),
    )
    .select_from(Assignment)
    .join(WorkItem, col(WorkItem.id) == Assignment.item_id)
    .join(Plan, col(Plan.id) == WorkItem.plan_id)
    .join(Contact, col(Contact.id) == Assignment.contact_id)
)
_CONTACTS = sa.select(col(Contact.name))
_ENTERED = aliased(Contact)
_REPORTS = (
    sa.select(
        col(Report.id),
        col(Plan.code),
        col(WorkItem.number),
        col(Contact.name),
        col(Report.percent),
        col(Report.status),
        col(Report.kind),
        col(_ENTERED.name),
        col(Report.superseded_by_id),
        col(Report.withdrawn_at),
    )
    .join(WorkItem, col(WorkItem.id) == Report.item_id)
    .join(Plan, col(Plan.id) == WorkItem.plan_id)
    .join(Contact, col(Contact.id) == Report.contact_id)
    .outerjoin(_ENTERED, col(_ENTERED.id) == Report.entered_by_id)
)
_VALUES = sa.select(sa.func.count()).select_from(TargetValue)
_REPORTED = (
    select(WorkItem, Plan.code)
    .join(Plan, col(Plan.id) == WorkItem.plan_id)
    .where(col(WorkItem.id).in_(select(Report.item_id)))
)
_NOTICES = sa.select(
    col(Outbox.dedupe_key), col(Outbox.kind), col(Outbox.payload), col(Contact.name)
).outerjoin(Contact, col(Contact.id) == Outbox.contact_id)
# A plan and every row of its items (what closing it makes read-only).
_TABLES = SQLModel.metadata.tables
_PLAN_ITEMS = sa.select(col(WorkItem.id)).where(col(WorkItem.plan_id) == sa.bindparam("plan_id"))
_OF_PLAN = [
    sa.select(_TABLES["plan"]).where(_TABLES["plan"].c.id == sa.bindparam("plan_id")),
    sa.select(_TABLES["work_item"]).where(
        _TABLES["work_item"].c.plan_id == sa.bindparam("plan_id")
    ),
    *(
        sa.select(_TABLES[name]).where(_TABLES[name].c.item_id.in_(_PLAN_ITEMS))
        for name in ("assignment", "report", "target")
    ),
    sa.select(_TABLES["target_value"]).where(
        _TABLES["target_value"].c.report_id.in_(
            sa.select(col(Report.id)).where(col(Report.item_id).in_(_PLAN_ITEMS))
        )
    ),
]


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


@pytest.mark.slow  # hundreds of random plan years against the model (`-m slow`)
def test_the_plan_year_matches_the_model(
    fresh_engines: Callable[[], Engine],
    plan_versions: dict[str, ParsedPlan],
    second_plan: ParsedPlan,
) -> None:
    class Machine(PlanMachine):
        new_engine = staticmethod(fresh_engines)
        versions = plan_versions
        second = second_plan

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


# --- what the machine steers clear of -------------------------------------------------------


def _carry_second_into_main(session: Session, main: ParsedPlan, second: ParsedPlan) -> Plan:
    """要点 and 民生 imported, 张敏 on 民生1 with a report, 民生 closed with its four items
    carried over into 要点 (as 28-31); returns 要点."""
    plans.import_plan(session, main, source_file=None, actor=ACTOR)
    plans.import_plan(session, second, source_file=None, actor=ACTOR)
    person = contacts.add_contact(session, name="张敏", unit="科", role=Role.official, actor=ACTOR)
    closing = plans.plan_by_code(session, SECOND)
    item = plans.find_item(session, closing, "1")
    assignments.assign(session, item=item, contact=person, actor=ACTOR, now=START)
    reports.record_report(session, item=item, contact=person, now=START, percent=50)
    into = plans.plan_by_code(session, MAIN)
    result = plans.close_plan(
        session,
        closing,
        now=START + timedelta(minutes=1),
        actor=ACTOR,
        unfinished=plans.live_items(session, closing),
        carry_to=into,
    )
    assert [(o.number, n.number) for o, n in result.carried] == [(1, 28), (2, 29), (3, 30), (9, 31)]
    session.commit()
    return into


def test_a_re_import_keeps_the_items_carried_over(
    session: Session, plan_versions: dict[str, ParsedPlan], second_plan: ParsedPlan
) -> None:
    into = _carry_second_into_main(session, plan_versions["sample"], second_plan)
    result = plans.import_plan(session, plan_versions["sample"], source_file=None, actor=ACTOR)
    assert result.removed == []
    assert [i.number for i in plans.live_items(session, into)][-4:] == [28, 29, 30, 31]


def test_a_document_item_numbered_like_a_carried_one_is_refused(
    session: Session, plan_versions: dict[str, ParsedPlan], second_plan: ParsedPlan
) -> None:
    _carry_second_into_main(session, plan_versions["sample"], second_plan)
    before = [(i.id, i.number, i.title, i.removed_at) for i in session.exec(select(WorkItem))]
    with pytest.raises(UserError, match="carried over"):  # "longer" has an item 28
        plans.import_plan(session, plan_versions["longer"], source_file=None, actor=ACTOR)
    session.rollback()
    after = [(i.id, i.number, i.title, i.removed_at) for i in session.exec(select(WorkItem))]
    assert after == before


def test_undo_leaves_a_closed_plan_as_it_was(
    session: Session, plan_versions: dict[str, ParsedPlan], second_plan: ParsedPlan
) -> None:
    _carry_second_into_main(session, plan_versions["sample"], second_plan)
    person = contacts.find_contact(session, "张敏")
    with pytest.raises(UserError, match="read-only"):
        reports.undo_last(session, person, START + timedelta(minutes=5))
