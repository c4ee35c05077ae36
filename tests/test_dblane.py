"""The database lane: blocking work off the event loop, handed across in batches."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from bot.dblane import DatabaseLane


async def test_results_and_exceptions_reach_the_caller() -> None:
    lane = DatabaseLane()
    try:
        assert await lane.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            await lane.run(lambda: 1 / 0)
        assert await lane.run(threading.current_thread) is not threading.current_thread()
    finally:
        lane.close()


async def test_queued_work_runs_in_order_and_in_batches() -> None:
    gate = threading.Event()
    order: list[int] = []
    batches: list[int] = []
    lane = DatabaseLane(batch=64)
    try:
        blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
        await asyncio.sleep(0.05)  # the worker is now inside gate.wait

        def job(n: int) -> int:
            order.append(n)
            return n * n

        calls = [asyncio.ensure_future(lane.run(job, n)) for n in range(100)]
        await asyncio.sleep(0.05)  # all 100 queued behind the blocker
        original = lane._run_batch

        def counting(jobs: list[Any]) -> None:
            batches.append(len(jobs))
            original(jobs)

        lane._run_batch = counting  # type: ignore[method-assign]
        gate.set()
        assert await blocker is True
        assert await asyncio.gather(*calls) == [n * n for n in range(100)]
    finally:
        lane.close()
    assert order == list(range(100))
    assert batches[:2] == [64, 36]  # two hand-offs for a hundred calls, not a hundred


async def test_deferred_items_are_written_together() -> None:
    written: list[list[int]] = []
    lane = DatabaseLane(deferred=lambda items: written.append(list(items)))
    gate = threading.Event()
    try:
        blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        for n in range(5):
            lane.defer(n)
        gate.set()
        await blocker
        for _ in range(100):
            if written:
                break
            await asyncio.sleep(0.01)
        assert written == [[0, 1, 2, 3, 4]]
        lane.defer(5)  # an idle lane is woken for it
        for _ in range(100):
            if len(written) == 2:
                break
            await asyncio.sleep(0.01)
        assert written == [[0, 1, 2, 3, 4], [5]]
    finally:
        lane.close()


async def test_close_finishes_deferred_writes_and_refuses_new_work() -> None:
    written: list[int] = []
    lane = DatabaseLane(deferred=written.extend)
    gate = threading.Event()
    blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
    await asyncio.sleep(0.05)
    lane.defer(1)
    gate.set()
    await blocker
    lane.close()
    assert written == [1]
    lane.defer(2)  # after close: written at once, never dropped
    assert written == [1, 2]
    with pytest.raises(RuntimeError):
        await lane.run(lambda: None)
    lane.close()  # twice is fine


async def test_a_failing_deferred_writer_does_not_stop_the_lane() -> None:
    def broken(_items: list[Any]) -> None:
        raise OSError("disk full")

    lane = DatabaseLane(deferred=broken)
    try:
        lane.defer(1)
        assert await lane.run(lambda: "still running") == "still running"
    finally:
        lane.close()


async def test_several_workers_share_the_queue() -> None:
    lane = DatabaseLane(workers=4, batch=1)
    barrier = threading.Barrier(4, timeout=5)
    try:
        # four calls that each wait for the other three: they pass only if four threads run them
        results = await asyncio.gather(*(lane.run(barrier.wait) for _ in range(4)))
        assert sorted(results) == [0, 1, 2, 3]
    finally:
        lane.close()


async def test_deferred_before_a_job_is_written_before_that_job_runs() -> None:
    written: list[int] = []
    seen: list[list[int]] = []
    gate = threading.Event()

    def writer(items: list[int]) -> None:
        gate.wait(5)  # the first write holds the worker until both below are queued
        written.extend(items)

    lane = DatabaseLane(deferred=writer)
    try:
        lane.defer(1)
        await asyncio.sleep(0.05)  # the worker is inside the write of [1]
        lane.defer(7)  # e.g. the link of a message just sent
        reader = asyncio.ensure_future(lane.run(lambda: seen.append(list(written))))
        await asyncio.sleep(0.05)
        gate.set()
        await reader
        assert seen == [[1, 7]]  # a reply to that message finds its link
    finally:
        lane.close()


async def test_with_several_workers_a_job_waits_for_a_write_in_progress() -> None:
    written: list[str] = []

    def slow_writer(items: list[str]) -> None:
        time.sleep(0.3)  # a slow commit, a lock wait
        written.extend(items)

    lane = DatabaseLane(workers=8, batch=1, deferred=slow_writer)
    try:
        await lane.run(lambda: None)
        lane.defer("link of message 42")  # a reply was sent ...
        await asyncio.sleep(0.01)  # ... another worker is writing its link now ...
        seen = await lane.run(lambda: list(written))  # ... when the answer to it is handled
        assert seen == ["link of message 42"]
    finally:
        lane.close()


async def test_one_bad_deferred_item_costs_only_itself() -> None:
    written: list[int] = []

    def writer(items: list[int]) -> None:
        if 13 in items:
            raise ValueError("a link to an item deleted meanwhile")
        written.extend(items)

    lane = DatabaseLane(deferred=writer)
    gate = threading.Event()
    try:
        blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        for n in (12, 13, 14):
            lane.defer(n)
        gate.set()
        await blocker
        await lane.run(lambda: None)
        assert written == [12, 14]
    finally:
        lane.close()


async def test_grouped_jobs_side_by_side_run_as_one_call() -> None:
    gate = threading.Event()
    calls: list[list[int]] = []

    def squares(items: list[int]) -> list[tuple[bool, Any]]:
        calls.append(list(items))
        return [(False, ValueError(n)) if n == 3 else (True, n * n) for n in items]

    def cubes(items: list[int]) -> list[tuple[bool, Any]]:
        calls.append([-n for n in items])
        return [(True, n**3) for n in items]

    lane = DatabaseLane(batch=64)
    try:
        blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
        await asyncio.sleep(0.05)  # the worker is now inside gate.wait: the rest queue up
        first = [asyncio.ensure_future(lane.run_grouped(squares, n)) for n in range(5)]
        plain = asyncio.ensure_future(lane.run(lambda: "plain"))
        after = [asyncio.ensure_future(lane.run_grouped(squares, n)) for n in (6, 7)]
        other = asyncio.ensure_future(lane.run_grouped(cubes, 2))
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        results = await asyncio.gather(*first, return_exceptions=True)
        assert results[:3] == [0, 1, 4] and results[4] == 16
        assert isinstance(results[3], ValueError)  # its own outcome only
        assert await plain == "plain"
        assert await asyncio.gather(*after) == [36, 49]
        assert await other == 8
    finally:
        lane.close()
    # in queue order; a plain job in between starts a new group, another function too
    assert calls == [[0, 1, 2, 3, 4], [6, 7], [-2]]


async def test_a_failing_group_call_fails_each_of_its_jobs() -> None:
    gate = threading.Event()

    def broken(items: list[int]) -> list[tuple[bool, Any]]:
        raise OSError("disk I/O error")

    def short(items: list[int]) -> list[tuple[bool, Any]]:
        return [(True, 0)]  # one outcome for several items: a bug, never a wrong answer

    lane = DatabaseLane(batch=64)
    try:
        blocker = asyncio.ensure_future(lane.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        failing = [asyncio.ensure_future(lane.run_grouped(broken, n)) for n in range(3)]
        miscounted = [asyncio.ensure_future(lane.run_grouped(short, n)) for n in range(2)]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        for result in await asyncio.gather(*failing, return_exceptions=True):
            assert isinstance(result, OSError)
        for result in await asyncio.gather(*miscounted, return_exceptions=True):
            assert isinstance(result, RuntimeError)
        assert await lane.run_grouped(short, 1) == 0  # alone: one outcome, fine
    finally:
        lane.close()
    with pytest.raises(RuntimeError):
        await lane.run_grouped(short, 1)
