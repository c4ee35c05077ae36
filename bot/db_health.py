"""Whether the database answers, for /healthz: cheap enough for a storm of probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.db_errors import describe

log = logging.getLogger(__name__)

STARTING = "starting"
NOT_ANSWERING = "database not answering"


class DatabaseHealth:
    """The database as /healthz reports it: None when it answers, else a short reason.

    Until `ready()` the reason is start-up's (waiting for the database, migrating). From then on
    it is a `SELECT 1` with a short timeout, run at most once per `ttl` seconds: the requests
    that come meanwhile share the answer, and a query still hanging answers "not answering" at
    once. The reason names the kind of problem, never a path, a host or a password.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 1.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._ready = False
        self._reason: str | None = STARTING
        self._checked_at = -math.inf
        self._probe: asyncio.Task[str | None] | None = None
        self._probe_started = 0.0

    def waiting(self, reason: str) -> None:
        """Start-up is waiting for the database: report `reason` until it is ready."""
        self._reason = reason

    def ready(self) -> None:
        """Start-up is done: from now on ask the database itself."""
        self._ready = True
        self._reason = None
        self._checked_at = self._clock()

    async def problem(self) -> str | None:
        """None when the database answers, else why not (a short phrase)."""
        if not self._ready or self._clock() - self._checked_at < self.ttl:
            return self._reason
        if self._probe is None:
            self._probe = asyncio.create_task(self._check(), name="database-health")
            self._probe_started = self._clock()
        left = self.timeout - (self._clock() - self._probe_started)
        if left <= 0:
            return NOT_ANSWERING  # the probe in flight hangs: do not wait on it again
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), left)
        except TimeoutError:
            return NOT_ANSWERING

    async def _check(self) -> str | None:
        try:
            await asyncio.to_thread(self._select_one)
            reason = None
        except Exception as exc:
            problem = describe(exc, self.engine.url)
            reason = (
                problem.reason if problem is not None else f"database error ({type(exc).__name__})"
            )
            if self._reason is None:
                log.warning("database unavailable: %s", problem or type(exc).__name__)
        else:
            if self._reason is not None:
                log.info("database reachable again")
        self._reason, self._checked_at, self._probe = reason, self._clock(), None
        return reason

    def _select_one(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        """Stop a probe still in flight."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
