"""The weekly digest on a big plan: SQL statements and the time to build and render it.

Seeds a plan of N items (10 sections, one official per item, a few leaders, a quantitative
target on one item in five, some additive) and R progress reports spread over the plan year
(2023-03-15 .. 2023-11-30, percent rising over time, ~15% of the reports stating no percent,
as a report saying only 滞后 and why is stored, ~30% of the reports on target items with a
target value) into a fresh SQLite file, and into a throwaway PostgreSQL database created on
the server of DUBAN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
and dropped afterwards; PostgreSQL is skipped, with a line saying why, when that server cannot
be reached. Then it measures `build_digest` + `render_digest` for the week of 2023-11-27, as of
2023-11-29 10:00 Beijing time:

- the SQL statements they execute, which must not grow with the number of items or reports
  and are the same on both databases;
- their wall time, the median of 7 runs after a warm-up: building, rendering each format, and
  the two together, in a process settled as `duban run` is after start-up (target for 1,000
  items and 100,000 reports, on SQLite and on PostgreSQL alike: build + render < 150 ms).

    uv run python bench/digest.py [--no-postgres] [--sizes 100:10000,1000:100000] [--quick]

--quick measures two small plans (20:500,200:5000): enough to see that the statement count
does not grow, in seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from bot import db, memory
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    Plan,
    Report,
    ReportStatus,
    Role,
    Section,
    Target,
    TargetValue,
    WorkItem,
)
from bot.services.digest import build_digest
from bot.services.progress import StatusRules
from bot.templating import DIGEST_FORMATS, render_digest

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2023, 11, 29, 10, tzinfo=TZ)  # Wednesday of 2023-W48 (27 Nov .. 3 Dec)
RULES = StatusRules()
LOCALE = "zh-CN"
PLAN_START = date(2023, 3, 15)
REPORTS_FROM = datetime(2023, 3, 15, tzinfo=TZ).astimezone(UTC)
REPORTS_UNTIL = datetime(2023, 12, 1, tzinfo=TZ).astimezone(UTC)  # end of 2023-11-30
SECTIONS = 10
LEADERS = 3
CHUNK = 5_000
RUNS = 7
TARGET_SECONDS = 0.15
TARGET_ITEMS = 1_000
NO_PERCENT = 0.15  # the share of reports that state no percent (stored as NULL)
QUICK_SIZES = "20:500,200:5000"
PG_ADMIN_URL = os.environ.get(
    "DUBAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECTION_LABELS = "一二三四五六七八九十"
UNITS = (
    "办公室",
    "基础教育科",
    "职业教育科",
    "高等教育科",
    "教师发展中心",
    "体育卫生艺术科",
    "安全管理科",
    "计划财务科",
    "督导室",
    "学前教育科",
    "民办教育科",
    "教育技术中心",
)
TOPICS = (
    "推进义务教育优质均衡发展",
    "扩大公办学位供给",
    "加强中小学教师队伍建设",
    "深化职业教育产教融合",
    "落实“双减”政策",
    "提升校园安全管理水平",
    "推进智慧教育示范区建设",
    "完善学前教育公共服务体系",
)
TEXTS = (
    "",
    "按计划推进",
    "已完成阶段性任务，正在组织验收",
    "本周召开专题协调会，明确责任分工和时间节点，下一步将加快推进项目建设并做好资金保障工作",
    "受天气影响，施工进度有所滞后",
    "已报送市政府审定",
)


@dataclass
class Profile:
    """How one seeded item behaves over the year."""

    item_id: int
    contact_id: int
    deadline: date
    pace: float  # 1.0: exactly on schedule
    silent_from: datetime  # no reports after this
    target: tuple[int, str, float] | None = None  # (target id, comparator, goal)


@dataclass
class Seeded:
    """A seeded plan and what it took."""

    plan_id: int
    items: int
    reports: int
    target_values: int
    seconds: float


@dataclass
class Figures:
    """What was measured on one plan."""

    seeded: Seeded
    sql: dict[str, int] = field(default_factory=dict)  # build / render_<fmt>
    build: list[float] = field(default_factory=list)
    render: dict[str, list[float]] = field(default_factory=dict)
    total: dict[str, list[float]] = field(default_factory=dict)
    summary: str = ""


# --- seeding -----------------------------------------------------------------------------


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)


def _seed_structure(session: Session, items: int, rng: random.Random) -> tuple[Plan, list[Profile]]:
    """Plan, sections, leaders, items, officials, assignments and targets, with the ORM."""
    plan = Plan(
        title=f"江门市教育局2023年工作要点（压测：{items}项）",
        code="要点",
        doc_number="江教〔2023〕1号",
        issuer="江门市教育局",
        issued_on=PLAN_START,
    )
    session.add(plan)
    session.flush()
    assert plan.id is not None
    leaders = [
        Contact(name=f"分管领导{i + 1}", unit="局领导", role=Role.leader) for i in range(LEADERS)
    ]
    session.add_all(leaders)
    session.flush()
    sections = [
        Section(
            plan_id=plan.id,
            number=s + 1,
            label=SECTION_LABELS[s],
            title=f"{TOPICS[s % len(TOPICS)]}，全面提高教育质量（第{s + 1}板块）",
            leader_id=leaders[s % LEADERS].id,
        )
        for s in range(SECTIONS)
    ]
    session.add_all(sections)
    session.flush()

    deadlines = [date(2023, 6, 30), date(2023, 9, 30), date(2023, 12, 31), date(2023, 12, 31)]
    work_items, officials = [], []
    for n in range(1, items + 1):
        unit = UNITS[n % len(UNITS)]
        section = sections[(n - 1) * SECTIONS // items]
        assert section.id is not None
        work_items.append(
            WorkItem(
                plan_id=plan.id,
                section_id=section.id,
                number=n,
                label=f"{n}.",
                title=f"{TOPICS[n % len(TOPICS)]}（{n}）",
                body=f"{TOPICS[n % len(TOPICS)]}，完成年度工作任务。（{unit}牵头）",
                lead_units=[unit],
                suggested_deadline=rng.choice(deadlines),
            )
        )
        officials.append(Contact(name=f"联络员{n:05d}", unit=unit, role=Role.official))
    session.add_all(work_items)
    session.add_all(officials)
    session.flush()

    profiles = []
    for item, official in zip(work_items, officials, strict=True):
        assert item.id is not None and official.id is not None
        session.add(Assignment(item_id=item.id, contact_id=official.id, role=AssignmentRole.lead))
        draw = rng.random()
        if draw < 0.04:
            silent_from = REPORTS_FROM  # never reports
        elif draw < 0.14:  # stops reporting some time between July and mid-November
            silent_from = _at(date(2023, 7, 1)) + timedelta(days=rng.uniform(0, 130))
        else:
            silent_from = REPORTS_UNTIL
        assert item.suggested_deadline is not None
        profiles.append(
            Profile(
                item_id=item.id,
                contact_id=official.id,
                deadline=item.suggested_deadline,
                pace=rng.uniform(0.55, 1.3),
                silent_from=silent_from,
            )
        )
    targets = []
    for profile, item in zip(profiles, work_items, strict=True):
        if item.number % 5:
            continue
        kind = (item.number // 5) % 4
        if kind == 3:  # a ceiling
            target = Target(
                item_id=profile.item_id,
                text="校园安全责任事故不超过5起",
                metric="安全责任事故",
                comparator="<=",
                value=5,
                unit="起",
            )
        else:
            target = Target(
                item_id=profile.item_id,
                text="新增公办学位不少于6,500个",
                metric="新增公办学位",
                comparator=">=",
                value=6_500,
                unit="个",
                additive=kind == 0,
            )
        targets.append((profile, target))
    session.add_all([t for _, t in targets])
    session.flush()
    for profile, target in targets:
        assert target.id is not None
        profile.target = (target.id, target.comparator, target.value)
    return plan, profiles


def _report_rows(
    profiles: list[Profile], reports: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Report rows (ids 1..R in time order) and target-value rows."""
    reporting = [p for p in profiles if p.silent_from > REPORTS_FROM]
    drawn = []
    for _ in range(reports):
        p = rng.choice(reporting)
        span = (p.silent_from - REPORTS_FROM).total_seconds()
        drawn.append((REPORTS_FROM + timedelta(seconds=rng.uniform(0, span)), p))
    drawn.sort(key=lambda pair: pair[0])
    start = _at(PLAN_START)
    rows, values = [], []
    for report_id, (at, p) in enumerate(drawn, start=1):
        window = (_at(p.deadline) - start).total_seconds()
        percent: int | None = min(100, round(100 * p.pace * (at - start).total_seconds() / window))
        if percent == 100:
            status: ReportStatus | None = ReportStatus.done
        elif p.pace < 0.75 and rng.random() < 0.2:
            status = ReportStatus.delayed
        else:
            status = ReportStatus.in_progress if rng.random() < 0.7 else None
        if status != ReportStatus.done and rng.random() < NO_PERCENT:
            percent = None  # 滞后 and why, or a note alone: the figure stays the last known one
            status = status if status == ReportStatus.delayed else None
        rows.append(
            {
                "id": report_id,
                "item_id": p.item_id,
                "contact_id": p.contact_id,
                "percent": percent,
                "status": status,
                "text": rng.choice(TEXTS),
                "source": "chat",
                "entered_by_id": None,
                "superseded_by_id": None,
                "withdrawn_at": at + timedelta(hours=1) if rng.random() < 0.01 else None,
                "created_at": at,
            }
        )
        if p.target is not None and rng.random() < 0.3:
            target_id, comparator, goal = p.target
            if comparator == "<=":
                value = float(rng.randint(0, 4))
            else:
                share = (percent if percent is not None else 50) / 100
                value = float(round(goal * share * rng.uniform(0.9, 1.05)))
            values.append({"report_id": report_id, "target_id": target_id, "value": value})
    return rows, values


def seed_plan(engine: Engine, items: int, reports: int) -> Seeded:
    """A plan of `items` items and `reports` reports; reports and values by Core bulk inserts."""
    started = time.perf_counter()
    rng = random.Random(f"duban-digest-bench:{items}:{reports}")
    with Session(engine) as session:
        plan, profiles = _seed_structure(session, items, rng)
        assert plan.id is not None
        rows, values = _report_rows(profiles, reports, rng)
        # Core inserts on the tables: one executemany per chunk (the ORM's bulk path would split
        # the chunk into a statement per run of rows with the same None columns).
        for model, batch in ((Report, rows), (TargetValue, values)):
            table = sa.inspect(model).local_table
            assert isinstance(table, sa.Table)
            for i in range(0, len(batch), CHUNK):
                session.execute(sa.insert(table), batch[i : i + CHUNK])
        session.commit()
        plan_id = plan.id
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does soon after a bulk load
    return Seeded(plan_id, items, len(rows), len(values), time.perf_counter() - started)


# --- measuring ---------------------------------------------------------------------------


class StatementCounter:
    """Counts the SQL statements an engine sends to the database."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def measure(engine: Engine, seeded: Seeded) -> Figures:
    """Statements and times of build + render: RUNS runs after one warm-up, each building the
    digest once and rendering it in every format.

    The weekly digest is built in `duban run`, which freezes what its start-up left alive out
    of the cycle collector's way (`memory.settle`); so does this process once seeded, or every
    third build would pay for a full collection of the seeding's and the imports' objects.
    """
    memory.settle()
    counter = StatementCounter(engine)
    figures = Figures(seeded)
    for fmt in DIGEST_FORMATS:
        figures.render[fmt], figures.total[fmt] = [], []
    for run in range(RUNS + 1):
        with Session(engine) as session:
            plan = session.get(Plan, seeded.plan_id)
            assert plan is not None
            counter.count = 0
            digest, built = _timed(build_digest, session, plan, now=NOW, tz=TZ, rules=RULES)
            figures.sql.setdefault("build", counter.count)
            if run:  # the first run is the warm-up: its statements count, not its time
                figures.build.append(built)
            for fmt in DIGEST_FORMATS:
                counter.count = 0
                text, rendered = _timed(render_digest, digest, fmt, LOCALE)
                figures.sql.setdefault(f"render_{fmt}", counter.count)
                if not run:
                    if fmt == "text":
                        figures.summary = _summary(digest, text)
                    continue
                figures.render[fmt].append(rendered)
                figures.total[fmt].append(built + rendered)
    return figures


def _summary(digest: Any, text: str) -> str:
    counts = digest.counts
    return (
        f"{len(digest.views):,} items: {counts['red']} red, {counts['amber']} amber, "
        f"{counts['green']} green, {counts['done']} done, {counts['none']} none; "
        f"{len(digest.reports):,} reports this week, {len(digest.changes)} status changes, "
        f"{len(digest.missing)} silent, {len(digest.targets)} targets; text {len(text):,} chars"
    )


# --- databases ---------------------------------------------------------------------------


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A fresh SQLite file, deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'duban.db'}"


def postgres_unreachable() -> str | None:
    """Why the PostgreSQL server of PG_ADMIN_URL cannot be used, or None when it can."""
    admin = sa.create_engine(db.normalize_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()
        return first[0] if first else type(exc).__name__
    finally:
        admin.dispose()
    return None


@contextmanager
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database duban_bench_<random> (CREATE DATABASE on the server's
    `postgres` database), dropped afterwards."""
    admin = sa.create_engine(db.normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"duban_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(db.normalize_url(PG_ADMIN_URL))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_backend(open_url: Callable[[], Any], sizes: list[tuple[int, int]]) -> list[Figures]:
    """Seed and measure each size on its own fresh database."""
    out = []
    for items, reports in sizes:
        with open_url() as url:
            engine = db.make_engine(url)
            try:
                db.upgrade(engine)
                seeded = seed_plan(engine, items, reports)
                out.append(measure(engine, seeded))
            finally:
                engine.dispose()
    return out


# --- printing ----------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:,.1f}"


def print_table(title: str, results: list[Figures]) -> None:
    """Metrics down, sizes across, the target on the right."""
    seeds = [r.seeded for r in results]
    totals = [r.sql["build"] + r.sql["render_text"] for r in results]
    constant = len(set(totals)) == 1
    at_target = [r for r in results if r.seeded.items == TARGET_ITEMS]

    def verdict(fmt: str) -> str:
        if not at_target:
            return f"< {TARGET_SECONDS * 1000:,.0f} ms at {TARGET_ITEMS:,} items (not measured)"
        ok = "ok" if median(at_target[0].total[fmt]) < TARGET_SECONDS else "MISSED"
        return f"< {TARGET_SECONDS * 1000:,.0f} ms at {TARGET_ITEMS:,} items: {ok}"

    rows: list[list[str]] = [
        ["items", *[f"{s.items:,}" for s in seeds], "target"],
        ["reports", *[f"{s.reports:,}" for s in seeds], ""],
        ["target values", *[f"{s.target_values:,}" for s in seeds], ""],
        ["seed (s)", *[f"{s.seconds:.1f}" for s in seeds], ""],
        ["SQL statements: build_digest", *[str(r.sql["build"]) for r in results], ""],
    ]
    for fmt in DIGEST_FORMATS:
        rows.append(
            [f"SQL statements: render {fmt}", *[str(r.sql[f"render_{fmt}"]) for r in results], ""]
        )
    rows.append(
        [
            "SQL statements: build + render text",
            *[str(n) for n in totals],
            f"constant: {'yes' if constant else 'NO'}",
        ]
    )
    rows.append([f"build_digest (ms, median of {RUNS})", *[_ms(r.build) for r in results], ""])
    for fmt in DIGEST_FORMATS:
        rows.append([f"render {fmt} (ms)", *[_ms(r.render[fmt]) for r in results], ""])
    for fmt in DIGEST_FORMATS:
        rows.append(
            [f"build + render {fmt} (ms)", *[_ms(r.total[fmt]) for r in results], verdict(fmt)]
        )

    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:-1])]
        cells.append(row[-1])
        print("  " + "  ".join(cells).rstrip())
    for r in results:
        print(f"  digest: {r.summary}")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """`100:10000,1000:100000` -> [(100, 10000), (1000, 100000)]."""
    out = []
    for part in text.split(","):
        items, _, reports = part.partition(":")
        out.append((int(items), int(reports)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-postgres", action="store_true", help=f"SQLite only (not {PG_ADMIN_URL})"
    )
    # PostgreSQL is measured by default now; --postgres is kept for older command lines.
    parser.add_argument("--postgres", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("100:10000,1000:100000"),
        help="ITEMS:REPORTS,... (default 100:10000,1000:100000)",
    )
    parser.add_argument("--quick", action="store_true", help=f"small plans only ({QUICK_SIZES})")
    args = parser.parse_args()
    if args.quick:
        args.sizes = parse_sizes(QUICK_SIZES)
    print(
        f"weekly digest {NOW.date().isocalendar()[0]}-W{NOW.isocalendar()[1]:02d} "
        f"as of {NOW.isoformat()}, locale {LOCALE}; times: medians of {RUNS} runs after a "
        f"warm-up; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    sqlite = run_backend(sqlite_url, args.sizes)
    print_table("SQLite (file, WAL)", sqlite)
    pg = make_url(PG_ADMIN_URL)
    where = f"{pg.username}@{pg.host}:{pg.port}"
    if args.no_postgres:
        print("\nPostgreSQL: skipped (--no-postgres)")
        return
    problem = postgres_unreachable()
    if problem is not None:
        print(f"\nPostgreSQL: skipped, {where} cannot be reached: {problem}")
        return
    postgres = run_backend(postgres_url, args.sizes)
    print_table(f"PostgreSQL ({where}/duban_bench_*, ANALYZE after seeding)", postgres)
    same = [a.sql == b.sql for a, b in zip(sqlite, postgres, strict=True)]
    print(f"\nthe same statements on SQLite and PostgreSQL: {'yes' if all(same) else 'NO'}")


if __name__ == "__main__":
    main()
