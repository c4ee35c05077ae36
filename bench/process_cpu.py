"""CPU per chat update in the chat core, in process: no network, no channel, no event loop cost
beyond the database lane's hand-off.

Seeds a fresh SQLite file (or, with --url, another database) with the test cast
(`tests.harness.seed`), stores N progress replies (`9 60%` from 张三) in the inbox as a channel
would, then handles them and prints milliseconds of CPU (time.process_time, all threads) per
update, and SQL statements per update:

- `direct`: `ChatCore.process` called one update at a time (one transaction each);
- `group`: `ChatCore.process_group` called with `--batch` updates at a time (on SQLite one
  transaction for them, a savepoint each; on PostgreSQL one transaction each);
- `lane`: through the database lane as `duban run` handles them, `--batch` updates queued at
  once (grouped as in `group` on SQLite), the hand-offs between threads included.

    uv run python bench/process_cpu.py [--updates 3000] [--batch 64] [--mode all] [--profile]

--profile prints the top of a cProfile of each measured run but `lane` (its worker thread is
not profiled); the profiler's own overhead inflates the figures: read them without it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot import db, inbox
from bot.chat import ChatCore
from bot.clock import FakeClock
from bot.events import EventKind, IncomingMessage
from bot.inbox import Received
from bot.settings import Settings
from handlers.registry import build_router

NOW = datetime(2023, 6, 9, 3, 0, tzinfo=UTC)
SENDER = "1001"  # 张三 in the test cast: answers for item 9
TEXT = "9 60%"
MODES = ("direct", "group", "lane")


def seed(engine: Engine) -> None:
    """The test cast and the sample plan (tests.harness owns how they are made)."""
    from tests.harness import seed as seed_cast

    seed_cast(engine)


def event(n: int) -> IncomingMessage:
    return IncomingMessage(
        platform="telegram",
        chat_id=SENDER,
        sender_id=SENDER,
        update_id=str(n),
        text=TEXT,
        kind=EventKind.text,
    )


def store(core: ChatCore, first: int, count: int) -> list[IncomingMessage]:
    """Store updates first..first+count-1 in the inbox (as a channel does before it acks)."""
    received = [Received(str(n), SENDER, "") for n in range(first, first + count)]
    for start in range(0, count, 100):
        inbox.store(core.engine, "telegram", received[start : start + 100], NOW)
    return [event(n) for n in range(first, first + count)]


def run_direct(core: ChatCore, events: list[IncomingMessage]) -> None:
    for ev in events:
        assert core.process(ev) is not None


def run_group(core: ChatCore, events: list[IncomingMessage], batch: int) -> None:
    for start in range(0, len(events), batch):
        outcomes = core.process_group(events[start : start + batch])
        assert all(ok and value is not None for ok, value in outcomes)


def run_lane(core: ChatCore, events: list[IncomingMessage], batch: int) -> None:
    async def main() -> None:
        for start in range(0, len(events), batch):
            wave = events[start : start + batch]
            results = await asyncio.gather(*(core.processed(ev) for ev in wave))
            assert all(r is not None for r in results)

    asyncio.run(main())


@contextmanager
def counting(engine: Engine) -> Iterator[list[int]]:
    counter = [0]

    def count(*_args: Any) -> None:
        counter[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def measure(
    core: ChatCore,
    name: str,
    run: Callable[[list[IncomingMessage]], None],
    updates: int,
    first: int,
    profile: bool,
) -> None:
    run(store(core, first, 200))  # warm: caches, statement compilation
    events = store(core, first + 200, updates)
    profiler = cProfile.Profile() if profile else None
    with counting(core.engine) as statements:
        if profiler:
            profiler.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        run(events)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler:
            profiler.disable()
    print(
        f"{name:>12}: {cpu / updates * 1000:.3f} ms CPU per update, "
        f"{wall / updates * 1000:.3f} ms wall, {statements[0] / updates:.2f} statements"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64, help="updates queued at once (lane)")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        seed(engine)
        settings = Settings(_env_file=None, database_url=url, data_dir=Path(tmp))  # type: ignore[call-arg]
        core = ChatCore(engine, settings, build_router(), clock=FakeClock(NOW))
        print(f"{engine.dialect.name}, {args.updates} updates of {TEXT!r}")
        runs: dict[str, Callable[[list[IncomingMessage]], None]] = {
            "direct": lambda evs: run_direct(core, evs),
            "group": lambda evs: run_group(core, evs, args.batch),
            "lane": lambda evs: run_lane(core, evs, args.batch),
        }
        try:
            first = 1
            for mode in MODES if args.mode == "all" else (args.mode,):
                name = mode if mode == "direct" else f"{mode} x{args.batch}"
                profile = args.profile and mode != "lane"
                measure(core, name, runs[mode], args.updates, first, profile)
                first += args.updates + 200
        finally:
            core.close()
            engine.dispose()


if __name__ == "__main__":
    main()
