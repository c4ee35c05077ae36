"""How fast the CLI answers: `duban --help` and `duban items` on the sample plan, each run in a
fresh process, as an admin at a terminal runs them; prints the medians beside the targets.

    uv run python bench/cli_startup.py [--runs 9] [--warm-only]

`duban items` reads a temporary SQLite database into which the sample plan was imported and
assigned (`duban import`, `duban assign --csv`), so it is already at the newest migration.
The times are wall times of the whole process, the interpreter's start included; the CPU
time (user + system) beside them says how much of it was the process's own work when the
machine is busy with something else.

Python compiles every module it imports unless it finds the compiled bytecode cached, and
compiling SQLAlchemy, pydantic and the rest takes longer than importing them. Each command is
timed twice:

- warm: every module's bytecode cached, as for an installed `duban` after its first run, or
  one installed with `uv sync --compile-bytecode`. Each command runs once first to fill a cache
  in the temporary folder (PYTHONPYCACHEPREFIX; the checkout and the virtualenv are not touched).
- cold: the standard library's bytecode cached (as Python installs it), but not the installed
  packages' nor Duban's own: what every run costs where PYTHONDONTWRITEBYTECODE=1 is set and
  the packages were installed without compiling them (uv's default; `uv sync
  --compile-bytecode` compiles them once. Not set in pyproject.toml: `[tool.uv]
  compile-bytecode` makes every `uv run` check all 15,000 files again, about 2 s each time).

and a third time as this environment runs `duban` (installed): its own bytecode caches and its
own PYTHONDONTWRITEBYTECODE, nothing redirected. The first line printed says which of the two
others that is like.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
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


def this_environment() -> str:
    """Whether `duban` here finds its packages' bytecode cached, as a line to print."""
    packages = Path(sysconfig.get_paths()["purelib"])
    compiled = any(packages.glob("sqlalchemy/__pycache__/*.pyc"))
    no_writing = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    if compiled:
        return "this environment: the installed packages are compiled: duban runs warm here"
    if no_writing:
        return (
            "this environment: PYTHONDONTWRITEBYTECODE is set and the installed packages are not "
            "compiled: duban runs cold here, every time (uv sync --compile-bytecode, or "
            "UV_COMPILE_BYTECODE=1, makes it warm)"
        )
    return "this environment: bytecode is written on first use: duban runs warm after one run"


def stdlib_only(warm: Path, cold: Path) -> None:
    """Copy the standard library's part of a filled bytecode cache into an empty one."""
    for name in ("stdlib", "platstdlib"):
        part = Path(sysconfig.get_paths()[name]).resolve()
        source = warm / part.relative_to(part.anchor)
        if source.is_dir() and not part.is_relative_to(sys.prefix):  # not the virtualenv's
            shutil.copytree(source, cold / part.relative_to(part.anchor), dirs_exist_ok=True)


def report(command: str, label: str, runs: list[tuple[float, float]]) -> None:
    """One line: the median wall time beside the target."""
    target = TARGETS[command]
    wall = [w for w, _ in runs]
    median = statistics.median(wall)
    cpu = statistics.median(c for _, c in runs)
    verdict = "ok" if median <= target else "over"
    print(
        f"duban {command:<7} {label:<9} median {median:5.2f} s  (min {min(wall):.2f}, "
        f"max {max(wall):.2f}; CPU {cpu:.2f} s)  target {target:.1f} s  {verdict}"
    )


def main() -> None:
    """Prepare the database, time each command warm and cold, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command and mode")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold runs")
    options = parser.parse_args()
    print(this_environment())
    with tempfile.TemporaryDirectory(prefix="duban-cli-bench-") as tmp:
        folder = Path(tmp)
        warm_cache, cold_cache = folder / "pycache", folder / "pycache-stdlib"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder / 'duban.db'}",
            "LOCALE": "zh-CN",
            "PYTHONPYCACHEPREFIX": str(warm_cache),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        timed_run(["import", str(SAMPLE)], cwd=folder, env=env)
        timed_run(["assign", "--csv", str(ASSIGNMENTS)], cwd=folder, env=env)
        print(
            f"{options.runs} runs each; {' '.join(duban_command())}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        installed = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
        if "PYTHONDONTWRITEBYTECODE" in os.environ:
            installed["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
        for command in TARGETS:
            timed_run([command], cwd=folder, env=installed)  # as a first run here would
            runs = [timed_run([command], cwd=folder, env=installed) for _ in range(options.runs)]
            report(command, "installed", runs)
            timed_run([command], cwd=folder, env=env)  # fills the bytecode cache
            runs = [timed_run([command], cwd=folder, env=env) for _ in range(options.runs)]
            report(command, "warm", runs)
            if options.warm_only:
                continue
            stdlib_only(warm_cache, cold_cache)
            cold = {**env, "PYTHONPYCACHEPREFIX": str(cold_cache), "PYTHONDONTWRITEBYTECODE": "1"}
            runs = [timed_run([command], cwd=folder, env=cold) for _ in range(options.runs)]
            report(command, "cold", runs)


if __name__ == "__main__":
    main()
