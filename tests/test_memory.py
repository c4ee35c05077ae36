"""Freed memory goes back to the system (bot/memory.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import memory
from bot.app import DubanApp
from bot.board.queries import wall_views
from bot.services import plans
from bot.services.digest import build_digest
from bot.services.items import item_views
from bot.services.progress import StatusRules
from tests.fakes import FakeTelegram
from tests.harness import running_bot, seed, settings_for

TZ = ZoneInfo("Asia/Shanghai")

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's; this C library has none"
)

# Frees 99 of every 100 blocks of 2 KB (200 MB in all): the pages they were on are free but
# not at the top of the heap, so malloc keeps them resident until they are trimmed.
SCRIPT = """
from pathlib import Path
from bot import memory

def anon_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

blocks = [bytearray(2000) for _ in range(100_000)]
kept = blocks[::100]
del blocks
before = anon_kb()
released = memory.release()
print(released, before, anon_kb(), len(kept))
"""


@glibc
def test_release_gives_freed_pages_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    released, before, after = out[0], int(out[1]), int(out[2])
    assert released == "True"
    assert before - after > 100_000, (before, after)  # KB: most of the 200 MB freed


@glibc
def test_release_is_available_here() -> None:
    assert memory.release() is True


# Eight threads allocate at the same time; glibc's malloc_stats lists the arenas they used.
ARENAS = """
import ctypes, sys, threading
from bot import memory
print(memory.limit_arenas(2) if sys.argv[1] == "limit" else None, flush=True)
barrier = threading.Barrier(8)

def work():
    blocks = [bytearray(5000) for _ in range(1000)]
    barrier.wait()  # all eight alive at once, each holding what it allocated

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **env},
    )
    arenas = sum(line.startswith("Arena ") for line in done.stderr.splitlines())
    return done.stdout.strip(), arenas


@glibc
def test_threads_share_two_arenas() -> None:
    assert _arenas("none")[1] > 2  # one each, as glibc does by default
    assert _arenas("limit") == ("True", 2)


@glibc
def test_malloc_arena_max_in_the_environment_wins() -> None:
    assert _arenas("limit", MALLOC_ARENA_MAX="3") == ("False", 3)


@glibc
async def test_a_running_bot_keeps_giving_freed_memory_back(
    server: FakeTelegram, db_url: str
) -> None:
    async with running_bot(server, db_url) as chat:
        releasing = chat.app._releasing
        assert releasing is not None and not releasing.done()
    assert releasing.cancelled()  # stopped with the bot


# --- the cycle collector -------------------------------------------------------------------

SETTLE = """
import gc
import bot.app
from bot import memory
before = gc.get_freeze_count()
trimmed = memory.settle()
print(before, gc.get_freeze_count(), trimmed)
"""


def test_settle_freezes_what_start_up_left_alive() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SETTLE], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, trimmed = done.stdout.split()
    assert int(before) == 0
    assert int(after) > 50_000  # the modules' objects: never examined again
    assert trimmed == str(platform.libc_ver()[0] == "glibc")


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations the cycle collector examines from now on in this thread, woken every 20
    allocations (not 700) so that any stretch of work with it on shows."""
    seen: list[int] = []
    mine = threading.current_thread()  # not what other threads of the worker may trigger

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and threading.current_thread() is mine:
            seen.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(20)
    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)


def test_a_paused_stretch_runs_without_collections(collections: list[int]) -> None:
    with memory.collector_paused():
        assert not gc.isenabled()
        at_start = len(collections)
        kept = [{"n": n} for n in range(5_000)]
        during = len(collections) - at_start
    assert during == 0
    assert gc.isenabled()
    kept.extend({"n": -n} for n in range(1_000))
    assert len(collections) > at_start  # on again


def test_the_collector_runs_again_after_the_last_of_overlapping_pauses() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    states: list[bool] = []

    def first() -> None:
        with memory.collector_paused():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with memory.collector_paused():
        second_in.set()
        first_out.wait(10)
        states.append(gc.isenabled())  # the other pause is over, this one is not
    thread.join(10)
    states.append(gc.isenabled())
    assert states == [False, True]


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with memory.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_digest_item_views_and_the_wall_are_built_with_the_collector_paused(
    engine: Engine, collections: list[int]
) -> None:
    seed(engine)
    now = datetime(2023, 6, 8, 10, 0, tzinfo=TZ)
    rules = StatusRules()
    counts = {}
    with Session(engine) as session:
        plan = plans.current_plan(session)
        for name, views, digest, wall in (
            ("paused", item_views, build_digest, wall_views),
            (
                "unpaused",
                item_views.__wrapped__,  # type: ignore[attr-defined]
                build_digest.__wrapped__,  # type: ignore[attr-defined]
                wall_views.__wrapped__,  # type: ignore[attr-defined]
            ),
        ):
            before = len(collections)
            shown = views(session, plan, now=now, tz=TZ)
            built = digest(session, plan, now=now, tz=TZ, rules=rules)
            walled = wall(session, plan, now=now, tz=TZ, rules=rules)
            counts[name] = len(collections) - before
            assert len(shown) == len(built.views) == len(walled) == 27
    assert counts["unpaused"] > 30  # what the pause spares them
    assert counts["paused"] <= 6  # at most as each call begins or ends


async def test_duban_run_settles_once_started(
    server: FakeTelegram, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled: list[bool] = []  # whether the bot had started when it was settled
    app = DubanApp(settings_for(server, db_url), run_scheduler=False)

    def settle() -> bool:
        settled.append(app._releasing is not None)  # the last thing start() does
        return True

    monkeypatch.setattr(memory, "settle", settle)
    running = asyncio.create_task(app.run_until_signal())
    for _ in range(600):
        if settled or running.done():
            break
        await asyncio.sleep(0.05)
    signal.raise_signal(signal.SIGTERM)  # the handler run_until_signal put in place
    await asyncio.wait_for(running, 30)
    assert settled == [True]
