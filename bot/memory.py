"""Giving freed memory back to the system.

glibc's malloc keeps memory a program frees for its own reuse instead of returning it: the heap
only shrinks from its top, and each thread that allocates gets an arena of its own whose free
pages stay resident. A long-running `duban run` frees a lot (the start-up's imports and
migration check, every scheduler tick's reads, bursts of replies), so its resident size would
climb to the highest it has ever needed and stay there. `malloc_trim(0)` gives every whole free
page of every arena back (about 4 MB after start-up; a millisecond or so). Where the C library
is not glibc (musl, macOS) it is not there and nothing is done.

glibc also makes up to eight arenas per core as threads contend for malloc; Python's small
objects do not come from malloc at all, and each arena keeps its own free pages, so
`duban run` (the event loop, the database lane, a few worker threads) keeps to two
(`limit_arenas`, unless MALLOC_ARENA_MAX says otherwise). In a 20-minute soak the two together
kept the resident size 6 MB lower than without either, and flat.

Python's cycle collector examines, in each full collection, every container object alive: for
`duban run` the ~130,000 objects of its modules, classes and settings, which never become
garbage. `settle` freezes what is alive once start-up is done (`gc.freeze`): full collections
then examine only what came after (a full collection went from about 50 ms to a few; the digest
at 1,000 items no longer pays for one every third build). Only what is alive at start-up is
frozen, once: an object frozen and later dropped inside a reference cycle would never be
collected, so nothing that comes and goes (sessions, replies) may be frozen.

A big read (the digest, the board, the ledger at 1,000 items) builds tens of thousands of
objects that all stay alive until it is done; the cycle collector, woken every 700 of them,
examines them again and again (a third of the digest's time at 1,000 items). Such reads run
with the collector paused (`collector_paused`): reference counting still frees what they drop,
and any cycle is collected once the collector runs again.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h
ARENAS = 2


@functools.cache
def _libc_function(name: str, argtypes: tuple[str, ...]) -> Callable[..., int] | None:
    """A function of the process's own C library (glibc's malloc_trim, mallopt), or None
    where the library has none; looked up once."""
    import ctypes  # here: the CLI's reads pause the collector but never trim

    try:
        function = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        log.debug("no %s in this C library: freed memory stays with malloc", name)
        return None
    function.argtypes = [getattr(ctypes, t) for t in argtypes]
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


def release() -> bool:
    """Give the pages malloc holds free back to the system; False where it cannot."""
    trim = _libc_function("malloc_trim", ("c_size_t",))
    if trim is None:
        return False
    trim(0)
    return True


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Keep glibc's malloc to `arenas` arenas from now on (call before threads start), unless
    the environment sets MALLOC_ARENA_MAX; False where nothing was changed."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False  # the operator's choice, which glibc read at start
    mallopt = _libc_function("mallopt", ("c_int", "c_int"))
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def settle() -> bool:
    """Once start-up is done: collect its garbage, freeze what is left alive (never examined
    by the cycle collector again) and give the freed pages back; what `release` returns."""
    gc.collect()
    gc.freeze()
    return release()


_pause_lock = threading.Lock()
_pauses = 0  # reads running with the collector paused, in all threads
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run a big read with the cycle collector paused (for every thread, as gc works); it runs
    again when the last such read ends, unless it was off before the first began."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
