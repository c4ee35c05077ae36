"""The memory floor under `duban run`: what importing its libraries alone costs.

Each line is a fresh interpreter that imports one more group of libraries (those before it
too), then collects, gives freed memory back (glibc's malloc_trim, as `duban run` does once
started) and prints its resident set. No event loop runs, no database is opened, no object of
Duban's is made: `duban run` idles above the last line by what it builds (its application,
its web app, the bot, the scheduler, its compiled templates). bench/telegram_throughput.py
prints `duban run`'s idle RSS beside that of a bare python-telegram-bot echo bot.

    uv run python bench/memory_floor.py
"""

from __future__ import annotations

import subprocess
import sys

from bench.common import ROOT

# (what the line adds, the modules it imports): cumulative.
STEPS: list[tuple[str, list[str]]] = [
    ("python, nothing imported", []),
    ("+ asyncio, ssl", ["asyncio", "ssl"]),
    ("+ python-telegram-bot 22 (with httpx)", ["telegram", "telegram.ext"]),
    ("+ aiohttp client and web server", ["aiohttp", "aiohttp.web"]),
    ("+ SQLAlchemy Core (Alembic's base)", ["sqlalchemy"]),
    (
        "+ Jinja2, APScheduler 3, chinese_calendar",
        ["jinja2", "apscheduler.schedulers.asyncio", "chinese_calendar"],
    ),
    ("+ SQLAlchemy ORM, SQLModel", ["sqlalchemy.orm", "sqlmodel"]),
    ("+ pydantic-settings, Typer", ["pydantic_settings", "typer"]),
    (
        "+ Duban's modules for `duban run` (Telegram)",
        [
            "bot.app",
            "bot.cli",
            "handlers.registry",
            "bot.channels.telegram.channel",
            "sqlalchemy.dialects.sqlite",
            "uvicorn.protocols.http.h11_impl",
        ],
    ),
]

_PROBE = """
import ctypes, gc, importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(*(int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile")))
"""


def measure(modules: list[str]) -> tuple[float, float, float]:
    """VmRSS, RssAnon and RssFile in MB of a fresh interpreter that imported the modules."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    rss, anon, file = (int(v) / 1024 for v in out)
    return rss, anon, file


def main() -> None:
    modules: list[str] = []
    print(f"{'':46} {'RSS':>7} {'anon':>7} {'file':>7}  (MB, after collect + trim)")
    for label, more in STEPS:
        modules += more
        measure(modules)  # compiles what is not compiled yet: not part of the figure
        rss, anon, file = measure(modules)
        print(f"{label:46} {rss:7.1f} {anon:7.1f} {file:7.1f}")


if __name__ == "__main__":
    main()
