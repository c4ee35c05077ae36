"""Freed memory goes back to the system (bot/memory.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from bot import memory
from tests.fakes import FakeTelegram
from tests.harness import running_bot

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
