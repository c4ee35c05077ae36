"""Duban's memory over a long, steady load: the RSS slope per 1,000 replies.

`duban run` (its own process, SQLite file) answers progress replies from 200 officials through
the fake Bot API at a steady rate (default 50 a second for 20 minutes, 60,000 replies). RSS is
sampled every few seconds; the slope is a least-squares fit of RSS against replies answered,
after a warm-up (the first fifth: caches fill and the allocator settles). A leak shows as a
steady slope; the target is under 1 KB per 1,000 replies.

    uv run python bench/telegram_soak.py [--minutes 20] [--rate 50] [--officials 200]
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

SAMPLE_EVERY = 5.0  # seconds
WARM_UP = 0.2  # the share of the run left out of the fit


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of MB against replies, in KB per 1,000 replies."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var * 1024 * 1000


def main() -> None:
    """Run the steady load and print the RSS samples and the slope."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="replies a second")
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    total = int(args.minutes * 60 * args.rate)
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'soak.db'}"
        seed(url, args.officials)
        proc = start_duban(telegram_env(server, url), Path(tmp), free_port())
        try:
            server.wait_until(lambda s: s.stats["getUpdates"] > 1, timeout=30)
            idle = proc_status_mb(proc.pid, "VmRSS")
            print(f"idle: RSS {idle:.1f} MB; {total:,} replies at {args.rate:g}/s", flush=True)
            samples: list[tuple[int, float]] = []
            start = time.perf_counter()
            next_sample = start + SAMPLE_EVERY
            base = server.stats["sendMessage"]
            for n in range(total):
                due = start + n / args.rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                official = n % args.officials
                server.user_says(FIRST_TELEGRAM_ID + official, progress_text(n, official, 200))
                if time.perf_counter() >= next_sample:
                    answered = server.stats["sendMessage"] - base
                    rss = proc_status_mb(proc.pid, "VmRSS")
                    samples.append((answered, rss))
                    next_sample += SAMPLE_EVERY
                    if len(samples) % 24 == 0:
                        print(f"{answered:8,d} replies: RSS {rss:6.1f} MB", flush=True)
            server.wait_until(lambda s: s.stats["sendMessage"] - base >= total, timeout=600)
            samples.append((total, proc_status_mb(proc.pid, "VmRSS")))
            fitted = samples[int(len(samples) * WARM_UP) :]
            peak = proc_status_mb(proc.pid, "VmHWM")
            print(
                f"answered {total:,} in {time.perf_counter() - start:.0f} s; peak RSS {peak:.1f} MB"
            )
            print(
                f"RSS {fitted[0][1]:.1f} MB after the warm-up, {samples[-1][1]:.1f} MB at the end"
            )
            print(
                f"slope after the warm-up: {slope(fitted):+.2f} KB per 1,000 replies "
                "(target < 1 KB)"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
