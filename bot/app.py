"""The composition root: builds engine, core, channels, web app and dispatcher, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

import uvicorn
from sqlalchemy.engine import Engine

from bot import db, inbox, memory
from bot.board.routes import board_routes
from bot.channels import registry
from bot.channels.spec import Channel, ChannelDeps, GroupSender
from bot.chat import ChatCore
from bot.clock import Clock, system_clock
from bot.db_errors import describe
from bot.db_health import DatabaseHealth
from bot.redaction import Redactor, install_redaction
from bot.settings import Settings
from bot.web import EmbeddedServer, build_web_app
from handlers.registry import build_router
from scheduler.dispatcher import Dispatcher
from scheduler.runner import Planner, Scheduler, work_calendar

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=6)
RELEASE_EVERY = 60.0  # seconds between giving freed memory back to the system (bot/memory.py)
SHUTDOWN_GRACE = 8.0  # seconds; `duban run` must be down within 10 s of SIGTERM
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds between tries to reach the database at start


def configured_channels(settings: Settings) -> list[str]:
    """The platforms whose settings are complete (a half-configured one is an error)."""
    return [spec.name for spec in registry.configured(settings)]


class GroupRobots:
    """Every configured group robot as one: the leaders' group digest goes to each."""

    def __init__(self, robots: list[GroupSender]) -> None:
        self.robots = robots

    async def send_markdown(self, text: str) -> int:
        """Send to every robot; raises the first failure after trying them all."""
        sent, failure = 0, None
        for robot in self.robots:
            try:
                sent += await robot.send_markdown(text)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return sent


class DubanApp:
    """Everything `duban run` runs, owned in one place."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        engine: Engine | None = None,
        run_scheduler: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # First of all: the channels' libraries log their URLs (with the token) as they are built.
        self.redactor = Redactor.from_settings(settings)
        install_redaction(self.redactor)
        self.engine = engine or db.make_engine(settings.database_url)
        self.router = build_router()
        self.core = ChatCore(self.engine, settings, self.router, clock=clock)
        self.channels: list[Channel] = []
        deps = ChannelDeps(
            settings=settings, core=self.core, engine=self.engine, router=self.router
        )
        for spec in registry.configured(settings):
            channel = spec.build(deps)
            self.core.add_messenger(channel.messenger)
            self.channels.append(channel)
        robots = registry.groups(settings)
        group = GroupRobots(robots) if len(robots) > 1 else robots[0] if robots else None
        self.dispatcher = Dispatcher(
            self.engine,
            self.core.messengers,
            t=self.core.t,
            clock=clock,
            group=group,
            calendar=work_calendar(settings),
            batch=settings.outbox_batch,
            concurrency=settings.outbox_concurrency,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
            busy=self.core.sending,
            redact=self.redactor,
        )
        self.planner = Planner(self.engine, settings, clock=clock)
        self.scheduler = Scheduler(
            self.planner, self.dispatcher, tick_seconds=settings.scheduler_tick_seconds
        )
        self.core.after_commit.append(self.dispatcher.deliver_due)
        routes = [route for channel in self.channels for route in channel.routes()]
        # The leaders' board: read-only pages under /board, signed in with a link from chat.
        routes += board_routes(self.engine, settings, clock=clock)
        self.health = DatabaseHealth(self.engine)
        self.web = build_web_app(
            routes,
            status={"channels": [c.platform for c in self.channels]},
            health=self.health.problem,
        )
        self._server: EmbeddedServer | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._releasing: asyncio.Task[None] | None = None
        self._server_task: asyncio.Task[None] | None = None
        # Tests drive the planner and dispatcher by hand; `duban run` ticks on its own.
        self.run_scheduler = run_scheduler

    async def start(self) -> None:
        """Start the web app (/healthz answers 503 until the database does), wait for the
        database and migrate it, then start the channels and send what was left pending."""
        config = uvicorn.Config(
            self.web,
            host=self.settings.web_host,
            port=self.settings.web_port,
            log_level="warning",
            lifespan="off",
            # Nothing here speaks WebSocket: an upgrade request is answered as the plain HTTP
            # request it also is, and the websockets library is never loaded (1.5 MB).
            ws="none",
        )
        self._server = EmbeddedServer(config)
        self._server_task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._server_task.done():
                await self._server_task  # raises why it could not start
                raise RuntimeError("the web server stopped during start-up")
            await asyncio.sleep(0.02)
        await self._migrate_when_reachable()
        for channel in self.channels:
            await channel.start()
        if self.run_scheduler:
            self.scheduler.start()
        self._housekeeping = asyncio.create_task(self._prune_inbox(), name="inbox-prune")
        self.health.ready()
        # What start-up freed (imports, the migration check) goes back now, and what the
        # scheduler's ticks and the replies free every minute after (bot/memory.py).
        if memory.release():
            self._releasing = asyncio.create_task(self._release_memory(), name="release-memory")
        log.info("Duban running: channels %s", [c.platform for c in self.channels])

    async def _migrate_when_reachable(self) -> None:
        """Migrate the database; while it cannot be reached (or opened, or written), say why
        in one line and try again after 1, 2, 4 ... 30 seconds. Any other error is raised."""
        delay = RETRY_FIRST
        while True:
            try:
                await asyncio.to_thread(db.upgrade, self.engine)
            except Exception as exc:
                problem = describe(exc, self.engine.url)
                if problem is None:
                    raise
                self.health.waiting(problem.reason)
                log.warning("database unavailable, retrying in %.0f s: %s", delay, problem)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                if delay > RETRY_FIRST:
                    log.info("database reachable: migrated, starting")
                self.health.waiting("starting")
                return

    @property
    def web_port(self) -> int:
        """The port the web app listens on (useful when WEB_PORT=0)."""
        assert self._server is not None
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def _prune_inbox(self) -> None:
        """Delete handled inbox rows past their retention, now and every few hours."""
        while True:
            before = self.clock() - timedelta(days=self.settings.inbox_retention_days)
            try:
                await asyncio.to_thread(inbox.prune, self.engine, before)
            except Exception as exc:  # the database may be away for a while: try again later
                log.warning("pruning the inbox failed: %s", type(exc).__name__)
            await asyncio.sleep(PRUNE_EVERY.total_seconds())

    async def _release_memory(self) -> None:
        """Give freed memory back to the system every minute (a millisecond or so each)."""
        while True:
            await asyncio.sleep(RELEASE_EVERY)
            memory.release()

    async def stop(self) -> None:
        """Stop the scheduler and the channels (finishing updates in flight), then the web app."""
        for task in (self._housekeeping, self._releasing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.scheduler.stop()
        for channel in reversed(self.channels):
            try:
                await asyncio.wait_for(channel.stop(), SHUTDOWN_GRACE)
            except Exception:
                log.exception("stopping %s failed", channel.platform)
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._server_task, SHUTDOWN_GRACE)
        await self.health.close()
        self.core.close()
        self.engine.dispose()
        log.info("Duban stopped")

    async def run_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        starting = asyncio.create_task(self.start(), name="start")
        signalled = asyncio.create_task(stop.wait(), name="signal")
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while waiting for the database: stop waiting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        elif starting.exception() is not None:
            signalled.cancel()
            starting.result()  # raises why the start failed
        else:
            # The process is the bot's alone: what start-up left alive is frozen, out of the
            # cycle collector's way (bot/memory.py; not in start(): tests start many bots).
            memory.settle()
        try:
            await signalled
        finally:
            log.info("shutting down")
            await self.stop()
