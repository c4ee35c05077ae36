"""Duban's memory over a long, steady load: the RSS slope per 1,000 replies.

`duban run` (its own process, SQLite file) answers progress replies from 200 officials through
the fake Bot API at a steady rate (default 50 a second for 20 minutes, 60,000 replies). RSS is
sampled every few seconds; the slope is a least-squares fit of RSS against replies answered,
after a warm-up (the first fifth: caches fill and the allocator settles), and again over the
second half alone. A leak shows as a steady slope, the same in both and in every quarter;
settling shows as a slope that falls quarter by quarter, and as a second half far flatter than
the fit after the warm-up. The target is under 1 KB per 1,000 replies.

glibc's malloc takes most of the first minutes: it keeps the memory freed in each thread's
arena for reuse rather than giving it back, and those free lists grow (by 10 MB or so) until
they hold what the load's peaks need; live memory hardly moves meanwhile. RssAnon and RssFile
are printed at the end of the warm-up and at the end to tell heap from mapped files.

    uv run python bench/telegram_soak.py [--minutes 20] [--rate 50] [--officials 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col

from bench.common import (
    FIRST_TELEGRAM_ID,
    free_port,
    proc_status_mb,
    progress_text,
    seed,
    start_duban,
    telegram_env,
)
from bot import db
from bot.models import Assignment, Report, ReportStatus
from tests.fakes import FakeTelegram

SAMPLE_EVERY = 5.0  # seconds
HISTORY = 50_000  # reports in the database before the load (see seed_history)
WARM_UP = 0.2  # the share of the run left out of the fit
QUARTERS = 4


def seed_history(url: str, reports: int) -> None:
    """Progress reports the officials sent over the last four weeks, as a database in use for a
    while holds them (`reports` in all, round robin over the assignments).

    SQLite's memory grows with the database until its caches are full (`cache_size`, 2 MB a
    connection, and as much for a query's temporary b-trees): the scheduler's minutely tick
    reads every report of the plan, and its high-water mark climbs from under 1 MB on an
    empty database to 6.3 MB at about 40,000 reports, where it stays. On an empty database a
    20-minute load spends most of its time filling them, and that bounded growth would count
    as a slope; starting with a history past that size measures the steady state."""
    if reports <= 0:
        return
    engine = db.make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        owners = conn.execute(sa.select(col(Assignment.item_id), col(Assignment.contact_id))).all()
        rows = [
            {
                "item_id": owners[n % len(owners)][0],
                "contact_id": owners[n % len(owners)][1],
                "percent": min(100, 5 + n // len(owners) % 90),
                "status": ReportStatus.in_progress,
                "text": "本周推进顺利",
                "source": "chat",
                "kind": "progress",
                "created_at": now - timedelta(days=28) * (reports - n) / reports,
            }
            for n in range(reports)
        ]
        conn.execute(sa.insert(Report), rows)
    engine.dispose()


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of MB against replies, in KB per 1,000 replies."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var * 1024 * 1000


def window(points: list[tuple[int, float]], start: float, end: float) -> list[tuple[int, float]]:
    """The samples taken while the replies answered went from `start` to `end` (shares of the
    last sample's count), the sample at each end included."""
    total = points[-1][0]
    return [p for p in points if start * total <= p[0] <= end * total]


def describe(points: list[tuple[int, float]]) -> str:
    """A window's replies and its slope, for a line of the report."""
    return f"replies {points[0][0]:,}-{points[-1][0]:,}: {slope(points):+.2f} KB per 1,000 replies"


def memory_split(pid: int) -> str:
    """RSS split into the heap and other private memory (RssAnon) and mapped files (RssFile)."""
    anon, file = proc_status_mb(pid, "RssAnon"), proc_status_mb(pid, "RssFile")
    return f"anon {anon:.1f} MB + file {file:.1f} MB"


def main() -> None:
    """Run the steady load and print the RSS samples and the slope."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="replies a second")
    parser.add_argument("--officials", type=int, default=200)
    parser.add_argument(
        "--history",
        type=int,
        default=HISTORY,
        help="reports in the database before the load (0: an empty one)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    total = int(args.minutes * 60 * args.rate)
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'soak.db'}"
        seed(url, args.officials)
        seed_history(url, args.history)
        proc = start_duban(telegram_env(server, url), Path(tmp), free_port())
        try:
            server.wait_until(lambda s: s.stats["getUpdates"] > 1, timeout=30)
            idle = proc_status_mb(proc.pid, "VmRSS")
            print(
                f"idle: RSS {idle:.1f} MB; {args.history:,} reports before the load; "
                f"{total:,} replies at {args.rate:g}/s",
                flush=True,
            )
            samples: list[tuple[int, float]] = []
            start = time.perf_counter()
            next_sample = start + SAMPLE_EVERY
            base = server.stats["sendMessage"]
            warmed = ""
            for n in range(total):
                due = start + n / args.rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                official = n % args.officials
                server.user_says(FIRST_TELEGRAM_ID + official, progress_text(n, official, 200))
                if time.perf_counter() >= next_sample:
                    answered = server.stats["sendMessage"] - base
                    rss = proc_status_mb(proc.pid, "VmRSS")
                    samples.append((answered, rss))
                    next_sample += SAMPLE_EVERY
                    if not warmed and n >= total * WARM_UP:
                        warmed = memory_split(proc.pid)
                    if len(samples) % 24 == 0:
                        print(f"{answered:8,d} replies: RSS {rss:6.1f} MB", flush=True)
            server.wait_until(lambda s: s.stats["sendMessage"] - base >= total, timeout=600)
            samples.append((total, proc_status_mb(proc.pid, "VmRSS")))
            fitted = samples[int(len(samples) * WARM_UP) :]
            peak = proc_status_mb(proc.pid, "VmHWM")
            print(
                f"answered {total:,} in {time.perf_counter() - start:.0f} s; peak RSS {peak:.1f} MB"
            )
            print(
                f"RSS {fitted[0][1]:.1f} MB after the warm-up ({warmed}), "
                f"{samples[-1][1]:.1f} MB at the end ({memory_split(proc.pid)})"
            )
            quarters = [
                slope(window(samples, q / QUARTERS, (q + 1) / QUARTERS)) for q in range(QUARTERS)
            ]
            print(
                "slope in each quarter: "
                + ", ".join(f"{q:+.1f}" for q in quarters)
                + " KB per 1,000 replies"
            )
            print(f"slope after the warm-up, {describe(fitted)}")
            print(
                f"slope over the second half, {describe(window(samples, 0.5, 1.0))} (target < 1 KB)"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
