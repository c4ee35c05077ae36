"""Operations (issue #12, point 6): a database that cannot be used is the operator's to fix.

A read-only database, a SQLite path whose folder is missing or is a file, a path that is a
folder or a file that is no database, PostgreSQL down, refusing the login or without the
database: every CLI command that touches the database says so in one line and exits 2,
changing nothing. `duban run` waits for the database with backoff while /healthz answers 503,
then migrates, starts its channels and answers 200; SIGTERM stops it while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from bot import db
from bot.cli import app
from bot.db_errors import describe
from bot.db_health import DatabaseHealth
from tests.fakes import FakeTelegram
from tests.harness import ZHANG, seed
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
ASSIGNMENTS = ROOT / "samples" / "assignments.csv"
PASSWORD = "pw-Secret-4711"

# Every command that reads or writes the database, with arguments it would accept.
DB_COMMANDS: list[list[str]] = [
    ["import", str(SAMPLE)],
    ["items"],
    ["contacts", "add", "张三", "--unit", "基础教育科"],
    ["contacts", "list", "--json"],
    ["contacts", "invite", "张三"],
    ["assign", "9", "张三", "--deadline", "2023-12-31"],
    ["assign", "--csv", str(ASSIGNMENTS)],
    ["report", "9", "--as", "张三", "--percent", "60"],
    ["history"],
    ["digest"],
    ["export", "台账.xlsx"],
    ["targets", "list"],
    ["targets", "additive", "9", "1"],
    ["reminders", "preview", "--from", "2023-06-01", "--to", "2023-06-30"],
    ["remind", "now"],
    ["sections", "list"],
    ["sections", "leader", "三", "刘副局长"],
    ["db", "upgrade"],
    ["chat", "--as", "张三"],
]
WRITES: list[list[str]] = [
    ["import", str(SAMPLE)],
    ["contacts", "add", "新来的联络员", "--unit", "基础教育科"],
    ["assign", "9", "张三"],
    ["report", "9", "--as", "张三", "--percent", "60"],
    ["remind", "now"],
]


class Cli:
    """`duban` in-process against one DATABASE_URL, in a folder of its own."""

    def __init__(self, url: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(cwd)  # no stray .env from the checkout
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("LOCALE", "zh-CN")
        monkeypatch.setenv("LOG_LEVEL", "INFO")
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, locale: str = "zh-CN") -> Result:
        self.monkeypatch.setenv("LOCALE", locale)
        return CliRunner().invoke(app, list(args), input="")

    def refuses(self, args: list[str], *words: str, locale: str = "zh-CN") -> str:
        """Run a command: exit 2, one line holding every word, no traceback, no password."""
        result = self(*args, locale=locale)
        message = result.stderr.strip()  # rich's transient progress bar leaves a blank line
        assert result.exit_code == 2, (args, result.exit_code, result.output)
        assert message.count("\n") == 0, (args, message)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert PASSWORD not in result.output
        for word in words:
            assert word in message, (args, message)
        return message


# --- SQLite --------------------------------------------------------------------------------


def _migrated(path: Path, *, with_plan: bool = True) -> None:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    if with_plan:
        seed(engine)
    engine.dispose()


def _counts(path: Path) -> dict[str, int]:
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        counts = {
            table: int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())
            for table in ("plan", "work_item", "contact", "assignment", "report", "outbox")
        }
    engine.dispose()
    return counts


@contextlib.contextmanager
def _read_only(*paths: Path) -> Iterator[None]:
    """chmod 0444 on the files, 0555 on the folders; restored afterwards."""
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in paths}
    try:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        yield
    finally:
        for p, mode in before.items():
            p.chmod(mode)


def test_read_only_sqlite_reads_work_and_every_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod does not stop root (the tests may run as root); SQLite's own read-only open does,
    # the same as when it falls back to read-only because the OS refuses to write.
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "duban.db"
    _migrated(path)
    before = _counts(path)
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    cli = Cli(url, tmp_path, monkeypatch)
    with _read_only(path, folder):
        assert cli("items").exit_code == 0  # reading a read-only database is fine
        for args in WRITES:
            message = cli.refuses(args, "数据库只读", str(path), "mode=ro")
            assert message.startswith(f"数据库只读：{path} 不能写入。"), message
        english = cli.refuses(WRITES[1], "The database is read-only", locale="en")
        assert "数据库" not in english
    assert _counts(path) == before


def test_a_fresh_read_only_database_cannot_be_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "empty.db"
    sqlite_engine = sa.create_engine(f"sqlite:///{path}")
    with sqlite_engine.begin() as conn:  # a real, empty SQLite file, no tables
        conn.execute(sa.text("CREATE TABLE placeholder (x INTEGER)"))
    sqlite_engine.dispose()
    cli = Cli(f"sqlite:///file:{path}?mode=ro&uri=true", tmp_path, monkeypatch)
    for args in (["items"], ["db", "upgrade"]):
        cli.refuses(args, "数据库只读")


def test_read_only_open_of_a_missing_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nowhere.db"
    cli = Cli(f"sqlite:///file:{path}?mode=ro&uri=true", tmp_path, monkeypatch)
    cli.refuses(["items"], f"{path} 不存在", "mode=ro")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_folder_is_named_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    path = tmp_path / "missing" / "deeper" / "duban.db"
    cli = Cli(f"sqlite:///{path}", tmp_path, monkeypatch)
    message = cli.refuses(args, "DATABASE_URL")
    assert message == (
        f"数据库无法打开：{path} 所在的文件夹不存在。请先建好这个文件夹，或检查 DATABASE_URL，"
        "例如 sqlite:///./duban.db"
    )
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / "台账.xlsx").exists()


def test_a_relative_path_is_shown_where_it_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli("sqlite:///data/duban.db", tmp_path, monkeypatch)
    english = cli.refuses(["items"], locale="en")
    assert english == (
        f"Cannot open the database: the folder of {tmp_path / 'data' / 'duban.db'} does not "
        "exist. Create the folder, or check DATABASE_URL, e.g. sqlite:///./duban.db"
    )


def test_a_path_that_is_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "duban.db"
    folder.mkdir()
    cli = Cli(f"sqlite:///{folder}", tmp_path, monkeypatch)
    for args in (["import", str(SAMPLE)], ["items"], ["contacts", "list"], ["db", "upgrade"]):
        cli.refuses(args, f"{folder} 是一个文件夹", f"sqlite:///{folder}/duban.db")
    assert list(folder.iterdir()) == []


def test_a_folder_in_the_path_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder", encoding="utf-8")
    cli = Cli(f"sqlite:///{blocker / 'sub' / 'duban.db'}", tmp_path, monkeypatch)
    for args in (["import", str(SAMPLE)], ["items"], ["db", "upgrade"]):
        cli.refuses(args, f"{blocker} 是一个文件，不是文件夹")
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_a_file_that_is_not_a_database_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "duban.db"
    garbage = b"these are the minutes of the meeting, not a database\n" * 100
    path.write_bytes(garbage)
    cli = Cli(f"sqlite:///{path}", tmp_path, monkeypatch)
    for args in (
        ["import", str(SAMPLE)],
        ["items"],
        ["contacts", "add", "张三"],
        ["db", "upgrade"],
    ):
        cli.refuses(args, f"{path} 不是 SQLite 数据库文件")
    cli.refuses(["items"], "is not a SQLite database", locale="en")
    assert path.read_bytes() == garbage


def test_the_real_entry_point_says_it_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    """`python -m bot`, as an operator runs it (no CliRunner in between)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'duban.db'}",
        "LOCALE": "zh-CN",
        "LOG_LEVEL": "INFO",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "items"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("数据库无法打开：") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""
    debug = subprocess.run(
        [sys.executable, "-m", "bot", "items"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**env, "LOG_LEVEL": "DEBUG"},
        timeout=60,
    )
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr  # the details, for whoever asked for them
    assert debug.stderr.rstrip().endswith("例如 sqlite:///./duban.db")


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_postgres_down_is_one_line_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    port = free_port()  # nothing listens there
    cli = Cli(f"postgresql://duban:{PASSWORD}@127.0.0.1:{port}/duban", tmp_path, monkeypatch)
    message = cli.refuses(args)
    assert message == (
        f"无法连接 PostgreSQL（127.0.0.1:{port}）：连接被拒绝。"
        "请确认数据库已启动，或检查 DATABASE_URL"
    )
    assert not (tmp_path / "台账.xlsx").exists()


def test_postgres_down_in_english(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    cli = Cli(f"postgresql://duban:{PASSWORD}@127.0.0.1:{port}/duban", tmp_path, monkeypatch)
    assert cli.refuses(["items"], locale="en") == (
        f"Cannot connect to PostgreSQL (127.0.0.1:{port}): connection refused. Make sure the "
        "database is running, or check DATABASE_URL"
    )


def test_postgres_without_the_database(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(pg_server).set(database="duban_no_such_db", password=PASSWORD)
    cli = Cli(url.render_as_string(hide_password=False), tmp_path, monkeypatch)
    server = f"{url.host}:{url.port or 5432}"
    for args in (["import", str(SAMPLE)], ["items"], ["db", "upgrade"]):
        cli.refuses(args, f"PostgreSQL（{server}）上没有数据库 duban_no_such_db", "createdb")


def test_postgres_refusing_the_login(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(pg_server).set(username="duban_nobody", password=PASSWORD)
    cli = Cli(url.render_as_string(hide_password=False), tmp_path, monkeypatch)
    cli.refuses(["items"], "无法登录 PostgreSQL", "duban_nobody", "DATABASE_URL")


def test_read_only_postgres(
    pg_database_factory: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_database_factory()
    engine = db.make_engine(url)
    db.upgrade(engine)
    seed(engine)
    name = make_url(url).database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    cli = Cli(url, tmp_path, monkeypatch)
    assert cli("items").exit_code == 0
    for args in WRITES:
        cli.refuses(args, "数据库只读", name or "")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("consuming input failed: server closed the connection unexpectedly", "closed"),
        ("terminating connection due to administrator command", "closed"),
        ("the connection is closed", "closed"),
        (
            'connection failed: connection to server at "10.0.0.9", port 5432 failed: '
            "timeout expired",
            "unreachable",
        ),
        ("connection failed: No route to host", "unreachable"),
        ("connection failed: FATAL:  the database system is starting up", "starting"),
        ("connection failed: FATAL:  the database system is not accepting connections", "starting"),
        (
            'connection failed: connection to server at "db", port 6432 failed: received invalid '
            "response to SSL negotiation: H",
            "cannot connect",
        ),
        ("connection failed: FATAL:  sorry, too many clients already", "too many"),
        ('connection failed: FATAL:  password authentication failed for user "duban"', "login"),
    ],
)
def test_postgres_problems_by_their_words(message: str, reason: str) -> None:
    url = f"postgresql://duban:{PASSWORD}@db.internal:6432/duban"
    wrapped = sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(message))
    found = describe(wrapped, url)
    assert found is not None and reason in found.reason
    assert "db.internal:6432" in str(found) and PASSWORD not in str(found)
    assert describe(RuntimeError(message), url) is None  # not from the driver: a bug
    assert (
        describe(sa.exc.OperationalError("x", {}, psycopg.OperationalError("lock timeout")), url)
        is None
    )


# --- duban run -----------------------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:port forwarding to a server; `stop()` closes the port and every connection
    through it, as a database that goes away; `start()` brings it back."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


# How long `duban run` may take to answer /healthz at all: a fresh interpreter importing the
# app, which takes many times longer on a busy machine (the suite runs in parallel).
STARTUP = 60.0


class Running:
    """`duban run` in its own process, its log in a file (a full pipe would stall it)."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = tmp_path / "run.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
        base.update(LOCALE="zh-CN", LOG_LEVEL="INFO", WEB_PORT=str(self.port), PTB_TIMEDELTA="1")
        base.update(env)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=tmp_path,
                env=base,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def health(self) -> tuple[int, dict[str, object]] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=3)
        except httpx.TransportError:
            return None
        return response.status_code, json.loads(response.text)

    def wait_health(
        self, status: int, timeout: float, *, reasons: tuple[str, ...] = ()
    ) -> dict[str, object]:
        """Wait until /healthz answers `status` (with one of `reasons`, when given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"duban run exited: {self.log}"
            answer = self.health()
            if (
                answer is not None
                and answer[0] == status
                and (not reasons or answer[1].get("reason") in reasons)
            ):
                return answer[1]
            time.sleep(0.1)
        raise AssertionError(f"/healthz did not answer {status} in {timeout} s: {self.log}")

    def wait_log(self, predicate: Callable[[str], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.log):
            assert time.monotonic() < deadline, self.log
            time.sleep(0.1)

    def terminate(self) -> float:
        """SIGTERM; returns how long it took to exit (exit code 0 asserted)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        took = time.monotonic() - started
        assert code == 0, self.log
        return took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _retry_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "database unavailable, retrying in" in line]


def test_run_waits_for_postgres_answers_503_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    running = Running(
        tmp_path,
        {
            "DATABASE_URL": f"postgresql://duban:{PASSWORD}@127.0.0.1:{port}/duban",
            "TELEGRAM_BOT_TOKEN": "123456:AAH-fake-token-for-tests-0123456789abc",
            "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{free_port()}/bot",
        },
    )
    try:
        first = running.wait_health(503, timeout=STARTUP)  # at once, before the first try ends
        started = time.monotonic()
        assert first["reason"] in ("starting", "connection refused")
        body = running.wait_health(503, timeout=15, reasons=("connection refused",))
        assert body == {
            "status": "unavailable",
            "reason": "connection refused",
            "channels": ["telegram"],
        }
        # tries at 0, 1, 3 s (then 7, 15, 31 ... up to every 30 s): one line each
        running.wait_log(lambda log: len(_retry_lines(log)) >= 3, timeout=20)
        lines = _retry_lines(running.log)
        assert [line.split("retrying in ")[1].split(" s:")[0] for line in lines[:3]] == [
            "1",
            "2",
            "4",
        ]
        assert f"Cannot connect to PostgreSQL (127.0.0.1:{port}): connection refused" in lines[0]
        assert time.monotonic() - started < 15
        assert running.terminate() < 10  # while it waits for the database
    finally:
        running.kill()
    log = running.log
    assert "Traceback" not in log
    assert PASSWORD not in log
    assert len(log.splitlines()) == len(
        [line for line in log.splitlines() if line[:4].isdigit()]
    ), "every log line is a record of its own"


def test_run_waits_for_a_sqlite_folder_then_starts(server: FakeTelegram, tmp_path: Path) -> None:
    folder = tmp_path / "volume"
    running = Running(
        tmp_path,
        {
            "DATABASE_URL": f"sqlite:///{folder / 'duban.db'}",
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
            "TELEGRAM_POLL_TIMEOUT": "1",
        },
    )
    try:
        running.wait_health(503, timeout=STARTUP, reasons=("database folder missing",))
        running.wait_log(lambda log: len(_retry_lines(log)) >= 2, timeout=10)
        assert str(folder) in _retry_lines(running.log)[0]
        folder.mkdir()  # the volume is mounted
        assert running.wait_health(200, timeout=15) == {"status": "ok", "channels": ["telegram"]}
        assert (folder / "duban.db").exists()
        assert running.terminate() < 10
    finally:
        running.kill()
    assert "Traceback" not in running.log


def test_run_rides_out_postgres_going_away_and_loses_no_update(
    server: FakeTelegram, pg_database_factory: Callable[[], str], tmp_path: Path
) -> None:
    real = make_url(pg_database_factory())
    engine = db.make_engine(real.render_as_string(hide_password=False))
    db.upgrade(engine)
    seed(engine)
    engine.dispose()
    proxy = TcpProxy(free_port(), (real.host or "127.0.0.1", real.port or 5432))
    via_proxy = real.set(host="127.0.0.1", port=proxy.port, password=PASSWORD)
    running = Running(
        tmp_path,
        {
            "DATABASE_URL": via_proxy.render_as_string(hide_password=False),
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
            "TELEGRAM_POLL_TIMEOUT": "1",
        },
    )
    try:
        # PostgreSQL away at start: 503, one line per try
        running.wait_health(503, timeout=STARTUP, reasons=("connection refused",))
        running.wait_log(lambda log: len(_retry_lines(log)) >= 2, timeout=10)
        assert server.stats["getUpdates"] == 0, "no channel starts before the database is there"
        # back: migrated, channels started, 200, and the bot answers
        proxy.start()
        assert running.wait_health(200, timeout=20) == {"status": "ok", "channels": ["telegram"]}
        server.user_says(ZHANG, "9 60% 华侨实验小学主体完工")
        (answer,) = server.wait_for_messages(ZHANG, 1, timeout=15)
        assert "已记录 第9项" in answer.plain_text
        # away while running: /healthz says so within seconds; an update that comes now is
        # not confirmed to Telegram (the inbox cannot store it), so it is fetched again later
        proxy.stop()
        running.wait_health(
            503, timeout=10, reasons=("connection refused", "connection closed by the server")
        )
        server.user_says(ZHANG, "10 30% 公办园在建")
        running.wait_log(lambda log: "Telegram polling: OperationalError" in log, timeout=10)
        time.sleep(1)
        assert len(server.messages_to(ZHANG)) == 1
        # back again: the update is stored, handled and answered
        proxy.start()
        running.wait_health(200, timeout=15)
        messages = server.wait_for_messages(ZHANG, 2, timeout=40)
        assert "已记录 第10项" in messages[1].plain_text
        assert running.terminate() < 10
    finally:
        running.kill()
        proxy.stop()
    log = running.log
    assert PASSWORD not in log
    assert "database reachable again" in log
    engine = db.make_engine(real.render_as_string(hide_password=False))
    with engine.connect() as conn:
        reports = conn.execute(sa.text("SELECT count(*) FROM report")).scalar_one()
        unhandled = conn.execute(
            sa.text("SELECT count(*) FROM inbox WHERE handled_at IS NULL")
        ).scalar_one()
    engine.dispose()
    assert (reports, unhandled) == (2, 0)


# --- /healthz under a storm of probes ---------------------------------------------------------


async def test_health_asks_the_database_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "duban.db"
    engine = db.make_engine(f"sqlite:///{path}")
    queries: list[str] = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: queries.append(statement),
    )
    now = [100.0]
    health = DatabaseHealth(engine, clock=lambda: now[0])
    assert await health.problem() == "starting"
    health.ready()
    now[0] += 1.5
    answers = await asyncio.gather(*(health.problem() for _ in range(200)))
    assert answers == [None] * 200
    assert queries.count("SELECT 1") == 1
    now[0] += 0.5
    assert await health.problem() is None and queries.count("SELECT 1") == 1  # cached
    shutil.rmtree(tmp_path)  # the folder goes away: a new connection cannot open the file
    engine.dispose()
    now[0] += 1.0
    assert await health.problem() == "database folder missing"
    await health.close()
    engine.dispose()


async def test_a_hanging_database_answers_503_in_time_and_holds_no_one_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    release = threading.Event()
    health = DatabaseHealth(engine, ttl=0.0, timeout=0.3)
    monkeypatch.setattr(health, "_select_one", lambda: release.wait(10))  # a query that hangs
    health.ready()
    started = time.monotonic()
    assert await health.problem() == "database not answering"
    assert 0.25 < time.monotonic() - started < 1.0
    started = time.monotonic()
    answers = await asyncio.gather(*(health.problem() for _ in range(50)))
    assert answers == ["database not answering"] * 50
    assert time.monotonic() - started < 0.1  # the probe still hangs: nobody waits on it again
    release.set()
    for _ in range(100):
        if await health.problem() is None:
            break
        await asyncio.sleep(0.02)
    assert await health.problem() is None
    await health.close()
    engine.dispose()
