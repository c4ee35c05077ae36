"""Progress replies through the whole pipeline vs a bare python-telegram-bot echo bot.

5,000 progress replies from 200 officials go through the fake Bot API over loopback into
`duban run` (its own process, SQLite file) and back; the same load goes to a bare PTB echo
bot on the same fake server, in the same run. Prints both rates, their ratio (target >= 0.8),
CPU per message (the event loop's thread apart from the others: the database lane's), the
echo bots' and Duban's idle RSS, and Duban's peak RSS (target < 150 MB).

    uv run python bench/telegram_throughput.py [--messages 5000] [--officials 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    FIRST_TELEGRAM_ID,
    ROOT,
    count_rows,
    free_port,
    proc_status_mb,
    progress_text,
    push_load,
    seed,
    start_duban,
    telegram_env,
)
from tests.fakes import FakeTelegram


def drive(
    server: FakeTelegram,
    messages: int,
    officials: int,
    text_for: Callable[[int, int], str],
    pid: int,
) -> float:
    """Queue all messages at once; return the seconds until every reply was sent."""
    # No server.reset() between bots: it restarts update ids at 1, and the previous bot's
    # last long poll (still open at the server) would confirm them away with its old offset.
    load = push_load(
        server,
        pid,
        messages,
        officials,
        lambda official, text: server.user_says(FIRST_TELEGRAM_ID + official, text),
        lambda s: s.stats["sendMessage"],
        text_for=text_for,
    )
    print(
        f"  cpu {load.cpu_ms:.2f} ms/msg (event loop thread {load.loop_ms:.2f}, other threads "
        f"{load.cpu_ms - load.loop_ms:.2f}), busy {load.busy:.0%} of one core"
    )
    return load.elapsed


def run_echo(server: FakeTelegram, messages: int, officials: int, transport: str) -> float:
    """The bare PTB echo bot's time for the load (PTB's default httpx, or aiohttp)."""
    script = str(ROOT / "bench" / "_echo_bot.py")
    proc = subprocess.Popen(
        [sys.executable, script, server.token, server.url, transport],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        polls = server.stats["getUpdates"]
        server.wait_until(lambda s: s.stats["getUpdates"] > polls + 1, timeout=30)
        print(f"  echo bot RSS idle {proc_status_mb(proc.pid, 'VmRSS'):.1f} MB")
        return drive(server, messages, officials, lambda n, _o: f"echo {n}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def run_duban(
    server: FakeTelegram, messages: int, officials: int, workdir: Path
) -> tuple[float, float]:
    """Duban's time for the load and its peak RSS."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    seed(url, officials)
    proc = start_duban(telegram_env(server, url), workdir, free_port())
    try:
        polls = server.stats["getUpdates"]
        server.wait_until(lambda s: s.stats["getUpdates"] > polls + 1, timeout=30)

        def text(n: int, official: int) -> str:
            return progress_text(n, official, officials)

        idle = proc_status_mb(proc.pid, "VmRSS")
        elapsed = drive(server, messages, officials, text, proc.pid)
        after = proc_status_mb(proc.pid, "VmRSS")
        print(f"  duban RSS idle {idle:.1f} MB, after the load {after:.1f} MB")
        return elapsed, proc_status_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        processed = count_rows(url, "inbox")
        reports = count_rows(url, "report")
        print(f"  updates processed {processed}, reports stored {reports} (of {messages})")


def main() -> None:
    """Run both bots on the same load and print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        print("bare PTB echo bot (PTB's default httpx transport):")
        echo = run_echo(server, args.messages, args.officials, "httpx")
        print("bare PTB echo bot on Duban's aiohttp transport:")
        echo_aio = run_echo(server, args.messages, args.officials, "aiohttp")
        print("duban:")
        duban, rss = run_duban(server, args.messages, args.officials, Path(tmp))
    echo_rate, duban_rate = args.messages / echo, args.messages / duban
    aio_rate = args.messages / echo_aio
    print(f"messages: {args.messages} from {args.officials} officials")
    print(f"bare PTB echo bot          : {echo_rate:8.1f} msg/s ({echo:.2f} s)")
    print(f"echo bot, aiohttp transport: {aio_rate:8.1f} msg/s ({echo_aio:.2f} s)")
    print(f"duban (SQLite)             : {duban_rate:8.1f} msg/s ({duban:.2f} s)")
    print(f"ratio duban/echo           : {duban_rate / echo_rate:.2f} (target >= 0.8)")
    print(f"ratio duban/echo (aiohttp) : {duban_rate / aio_rate:.2f} (same transport on both)")
    print(f"duban peak RSS             : {rss:.1f} MB (target < 150 MB)")


if __name__ == "__main__":
    main()
