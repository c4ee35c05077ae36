"""What `duban run` keeps in memory: the modules it imports. Each import costs resident memory
for as long as the bot runs, so the bot (Telegram on SQLite) does not load what it never uses:
python-telegram-bot's Passport crypto, httpx's command-line client, rich (nothing is printed
through it), SQLAlchemy's PostgreSQL dialect. The check runs `duban run` through the entry
point in a fresh interpreter, where nothing else has imported those modules yet."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.optional_imports import skipping

ROOT = Path(__file__).resolve().parent.parent
# Not loaded by an idle `duban run` with Telegram on SQLite (bot/optional_imports.py,
# bot/dialects.py, the lazy consoles of bot/cli/runtime.py).
NOT_FOR_RUN = (
    "cryptography",
    "httpx._main",
    "rich",
    "pygments",
    "sqlalchemy.dialects.postgresql",
)

# `duban run` up to the point where it has built everything (channels included) and would
# start: the app is closed again instead of run.
RUN_AND_STOP = """
    import json, sys
    import bot.app

    async def built_then_closed(self):
        await self.health.close()
        self.core.close()
        self.engine.dispose()

    bot.app.DubanApp.run_until_signal = built_then_closed
    from bot.cli import main

    sys.argv = ["duban", "run"]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
    loaded = sorted(
        name for name in sys.modules if any(name == w or name.startswith(w + ".") for w in WATCHED)
    )
    import telegram._passport.credentials as credentials
    print(json.dumps({"loaded": loaded, "ptb": "telegram.ext" in sys.modules,
                      "passport_crypto": credentials.CRYPTO_INSTALLED}))
    # Afterwards the skipped modules import as usual (WeCom's wechatpy needs cryptography).
    import cryptography.hazmat.primitives.ciphers, httpx._main  # noqa
"""


def test_run_with_telegram_on_sqlite_loads_none_of_the_unused_libraries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "LOG_LEVEL": "WARNING",
        }
    )
    code = f"WATCHED = {NOT_FOR_RUN!r}\n" + textwrap.dedent(RUN_AND_STOP)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["ptb"]  # the channel was built: the check means something
    assert found["loaded"] == []
    assert found["passport_crypto"] is False  # Passport, which Duban does not use, is off


def test_skipping_hides_a_module_only_inside_the_block() -> None:
    name = "tabnanny"  # a standard module nothing here imports
    sys.modules.pop(name, None)
    try:
        with skipping(name, "json"), pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
        assert importlib.import_module("json") is json  # imported before: never skipped
        assert importlib.import_module(name) is sys.modules[name]  # afterwards, as usual
    finally:
        sys.modules.pop(name, None)
