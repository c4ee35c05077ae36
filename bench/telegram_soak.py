"""Duban's memory over a long load: RSS after every 5,000 progress replies.

A leak grows without bound; a cache or an allocator settles. `duban run` (its own process,
SQLite file) answers rounds of 5,000 replies from 200 officials through the fake Bot API.

    uv run python bench/telegram_soak.py [--rounds 8] [--officials 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import (
    FIRST_TELEGRAM_ID,
    free_port,
    proc_status_mb,
    progress_text,
    seed,
    start_duban,
    telegram_env,
)
from tests.fakes import FakeTelegram

ROUND = 5000


def main() -> None:
    """Run the rounds and print RSS after each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'soak.db'}"
        seed(url, args.officials)
        proc = start_duban(telegram_env(server, url), Path(tmp), free_port())
        try:
            server.wait_until(lambda s: s.stats["getUpdates"] > 1, timeout=30)
            first = proc_status_mb(proc.pid, "VmRSS")
            print(f"idle: RSS {first:.1f} MB")
            done, after_first = 0, 0.0
            for _ in range(args.rounds):
                start = time.perf_counter()
                for n in range(ROUND):
                    official = n % args.officials
                    text = progress_text(n, official, args.officials)
                    server.user_says(FIRST_TELEGRAM_ID + official, text)
                done += ROUND
                server.wait_until(
                    lambda s, target=done: s.stats["sendMessage"] >= target, timeout=600
                )
                rss = proc_status_mb(proc.pid, "VmRSS")
                after_first = after_first or rss
                rate = ROUND / (time.perf_counter() - start)
                print(f"{done:7,d} replies: RSS {rss:6.1f} MB ({rate:5.0f} msg/s)", flush=True)
            growth = (rss - after_first) * 1024 / max(1, done - ROUND)
            print(f"growth after the first round: {growth:.2f} KB per reply")
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
