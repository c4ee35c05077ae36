"""Database work off the event loop, handed across threads in batches.

`loop.run_in_executor` costs a thread wake-up and a loop wake-up for every call; under load
(a getUpdates answer brings up to 100 updates at once) that hand-off cost more CPU than the
database work itself. A lane keeps one queue: a worker thread takes everything waiting (up to
`batch` jobs), runs it, and resolves all their futures with one wake-up of the loop.

Jobs queued with `run_grouped` for the same function that sit side by side in a batch go to
that function together, as one call with the list of their items: the chat core handles them
in one transaction (one COMMIT for the lot, a savepoint each). The function answers for each
item, and every caller gets its own answer only once the call has returned.

Work that nobody waits for (`defer`) is collected and written together, in one transaction,
before the next batch runs, so a job queued after an item was deferred sees it: Duban defers
the links it records after a reply is sent, and a reply to that message finds its link.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a grouped function answers for each item: (True, its result) or (False, its exception).
Outcome = tuple[bool, Any]
GroupFn = Callable[[list[Any]], list[Outcome]]

_STOP = object()


class _Job:
    __slots__ = ("args", "fn", "future", "grouped", "loop")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        *,
        grouped: bool = False,
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future = future
        self.grouped = grouped  # fn takes a list of items (args[0] is this job's)


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Runs on the event loop: resolve a batch's futures (skipping cancelled ones)."""
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class DatabaseLane:
    """Worker threads that run blocking database calls for the event loop, in batches.

    `deferred` is called on a worker, before its next batch, with the list of everything
    passed to `defer` since its last call, so such writes share one transaction.
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        batch: int = 64,
        deferred: Callable[[list[Any]], None] | None = None,
        name: str = "duban-db",
    ) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch = max(1, batch)
        self._deferred_fn = deferred
        self._deferred: list[Any] = []
        self._deferred_lock = threading.Lock()
        # One flush at a time, holding this while it writes: a worker about to run jobs
        # flushes first, and so waits for a flush in progress on another worker too.
        self._flush_lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a worker and return its result (or raise its exception)."""
        if self._closed:
            raise RuntimeError("the database lane is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, args, loop, future))
        return await future

    async def run_grouped(self, fn: GroupFn, item: Any) -> Any:
        """Run `fn([item, ...])` on a worker together with the items of the jobs queued for the
        same `fn` right beside this one in its batch (in queue order), and return this item's
        result (or raise its exception). `fn` answers with one `Outcome` per item, in order;
        when it raises, every item of the call gets that exception."""
        if self._closed:
            raise RuntimeError("the database lane is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(fn, (item,), loop, future, grouped=True))
        return await future

    def defer(self, item: Any) -> None:
        """Hand an item to the `deferred` writer; it is written before the next batch runs."""
        if self._deferred_fn is None:
            raise RuntimeError("this lane has no deferred writer")
        if self._closed:  # no worker left to write it: write it now
            self._write([item])
            return
        with self._deferred_lock:
            first = not self._deferred
            self._deferred.append(item)
        if first:
            self._queue.put(None)  # wakes a worker when the lane is idle

    def close(self) -> None:
        """Finish the work queued so far (deferred writes included) and stop the workers."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            jobs = [first]
            while len(jobs) < self._batch:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(job is _STOP for job in jobs)
            # Deferred writes go first, in one transaction: an item deferred before a job was
            # queued is written before that job runs (by this worker, or by another whose
            # flush this one waits for). Whatever is deferred meanwhile queued a marker that
            # brings the next batch, and with it the next write.
            self._flush_deferred()
            self._run_batch([job for job in jobs if isinstance(job, _Job)])
            if stop:
                self._flush_deferred()
                # other workers' stop markers taken by this one go back for them
                for _ in range(sum(job is _STOP for job in jobs) - 1):
                    self._queue.put(_STOP)
                return

    def _run_batch(self, jobs: list[_Job]) -> None:
        outcomes: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
        outcomes = {}
        for group in _groups(jobs):
            for job, (ok, value) in zip(group, _run(group), strict=True):
                outcomes.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in outcomes.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.debug("event loop closed before %d results were delivered", len(settled))

    def _flush_deferred(self) -> None:
        if self._deferred_fn is None:
            return
        with self._flush_lock:
            with self._deferred_lock:
                items, self._deferred = self._deferred, []
            if items:
                self._write(items)

    def _write(self, items: list[Any]) -> None:
        """Write deferred items together; when that fails, one by one (a bad one, e.g. a link
        to an item deleted meanwhile, costs only itself)."""
        assert self._deferred_fn is not None
        try:
            self._deferred_fn(items)
            return
        except BaseException:
            if len(items) == 1:
                log.exception("writing a deferred record failed")
                return
        lost = 0
        for item in items:
            try:
                self._deferred_fn([item])
            except BaseException:
                lost += 1
        log.error("writing %d deferred records together failed; %d lost", len(items), lost)


def _groups(jobs: list[_Job]) -> list[list[_Job]]:
    """The batch in order, grouped jobs for the same function side by side taken together."""
    groups: list[list[_Job]] = []
    for job in jobs:
        last = groups[-1][-1] if groups else None
        if job.grouped and last is not None and last.grouped and last.fn == job.fn:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _run(group: list[_Job]) -> list[Outcome]:
    """Run one job, or one call for a group; an exception becomes the outcome of each."""
    first = group[0]
    try:
        if not first.grouped:
            return [(True, first.fn(*first.args))]
        outcomes = first.fn([job.args[0] for job in group])
        if len(outcomes) != len(group):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(group)} grouped jobs")
        return outcomes
    except BaseException as exc:  # handed to the awaiting coroutines
        return [(False, exc)] * len(group)
