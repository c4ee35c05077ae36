"""`duban run` as an operator starts it: the real process, its channels, signals and exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeTelegram
from tests.harness import ZHANG, seed
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "LOCALE": "zh-CN"})
    env.update(extra)
    return env


def test_run_without_a_channel_exits_2_and_says_what_to_set(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in proc.stderr and "WECOM_CORP_ID" in proc.stderr


def test_webhook_without_secret_is_refused(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        TELEGRAM_BOT_TOKEN="123:abc",
        TELEGRAM_WEBHOOK_URL="https://example.org/telegram/webhook",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "TELEGRAM_WEBHOOK_SECRET" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_telegram_and_stops_cleanly_on_a_signal(
    server: FakeTelegram, tmp_path: Path, sig: signal.Signals
) -> None:
    from bot import db

    url = f"sqlite:///{tmp_path / 'run.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    seed(engine)
    engine.dispose()
    port = free_port()
    env = _env(
        tmp_path,
        TELEGRAM_BOT_TOKEN=server.token,
        TELEGRAM_API_BASE_URL=f"{server.url}/bot",
        TELEGRAM_POLL_TIMEOUT="1",
        WEB_PORT=str(port),
        PTB_TIMEDELTA="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a fresh interpreter: slow to start on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("duban run did not answer /healthz")
        upgrade = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }  # no WebSocket is served: answered as plain HTTP, not switched (101) or refused
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", headers=upgrade).status_code == 200
        server.user_says(ZHANG, "9 60% 华侨实验小学主体完工")
        (answer,) = server.wait_for_messages(ZHANG, 1, timeout=15)
        assert "已记录 第9项" in answer.plain_text
        started = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=15)
        assert time.monotonic() - started < 10
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, err = proc.communicate()
    assert "Traceback" not in err
    assert server.token not in err  # the token never reaches the log
    assert "华侨实验小学" not in err  # nor a message body
