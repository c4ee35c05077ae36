"""How fast the CLI answers: `duban --help` and `duban items` on the sample plan, each run in a
fresh process, as an admin at a terminal runs them; prints the medians beside the targets.

    uv run python bench/cli_startup.py [--runs 9] [--cold]

`duban items` reads a temporary SQLite database into which the sample plan was imported and
assigned (`duban import`, `duban assign --csv`), so it is already at the newest migration.
The times are wall times of the whole process, the interpreter's start included; the CPU
time (user + system) beside them says how much of it was the process's own work when the
machine is busy with something else.

Python compiles every module it imports unless it finds the compiled bytecode cached, and an
installed `duban` has it cached after its first run. By default each command runs once first to
fill a bytecode cache in the temporary folder (PYTHONPYCACHEPREFIX; the checkout is not
touched), then the timed runs. --cold times runs with an empty cache that is never written
(as under PYTHONDONTWRITEBYTECODE=1 with no __pycache__ folders): every import compiled.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
ASSIGNMENTS = ROOT / "samples" / "assignments.csv"
TARGETS = {"--help": 0.3, "items": 0.8}  # seconds, from the issue "Lighter and faster"


def duban_command() -> list[str]:
    """The installed `duban` script beside this interpreter, or `python -m bot`."""
    script = Path(sys.executable).with_name("duban")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def timed_run(args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `duban ARGS` in a new process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*duban_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"duban {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def main() -> None:
    """Prepare the database, time each command, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command")
    parser.add_argument("--cold", action="store_true", help="no bytecode cache")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duban-cli-bench-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder / 'duban.db'}",
            "LOCALE": "zh-CN",
            "PYTHONPYCACHEPREFIX": str(folder / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        timed_run(["import", str(SAMPLE)], cwd=folder, env=env)
        timed_run(["assign", "--csv", str(ASSIGNMENTS)], cwd=folder, env=env)
        if options.cold:
            env["PYTHONPYCACHEPREFIX"] = str(folder / "empty-pycache")
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        print(
            f"{options.runs} runs each, {'cold (no bytecode cache)' if options.cold else 'warm'}"
            f"; {' '.join(duban_command())}; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        for command, target in TARGETS.items():
            if not options.cold:
                timed_run([command], cwd=folder, env=env)  # fills the bytecode cache
            runs = [timed_run([command], cwd=folder, env=env) for _ in range(options.runs)]
            wall = [w for w, _ in runs]
            median = statistics.median(wall)
            cpu = statistics.median(c for _, c in runs)
            verdict = "ok" if median <= target else "over"
            print(
                f"duban {command:<7} median {median:5.2f} s  (min {min(wall):.2f}, "
                f"max {max(wall):.2f}; CPU {cpu:.2f} s)  target {target:.1f} s  {verdict}"
            )


if __name__ == "__main__":
    main()
