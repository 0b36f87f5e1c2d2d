"""CLI start benchmark: how long `sigsci-iga --help` takes, as whole processes, against a floor.

Run by hand (not part of the test suite):

    .venv/bin/python bench/cli_start.py              # 20 runs of each command
    .venv/bin/python bench/cli_start.py --runs 50

The floor is the same interpreter doing nothing (`python -c pass`): interpreter start-up, site
and the virtual environment's path setup, which no command can beat. Every command is started as
a child process the way a shell starts it (the console script, or `python -m`), with its output
thrown away; runs are interleaved so that a burst of load elsewhere on the machine hits every
command alike. Reported per command: the fastest and the median wall time, the median minus the
floor's (the command's own cost), the median CPU time (user + system, which a busy machine
inflates less than wall time), and whether the median wall time meets the goal of 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 0.3


def commands(venv_bin: Path) -> dict[str, list[str]]:
    python = str(venv_bin / "python")
    script = str(venv_bin / "sigsci-iga")
    return {
        "floor: python -c pass": [python, "-c", "pass"],
        "sigsci-iga --help": [script, "--help"],
        "sigsci-iga accounts list --help": [script, "accounts", "list", "--help"],
        "sigsci-iga sim serve --help": [script, "sim", "serve", "--help"],
        "sigsci-iga --version": [script, "--version"],
    }


def time_once(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one child process."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(  # noqa: S603  # our own interpreter and console script, fixed arguments
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs of each command.")
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    table = commands(venv_bin)
    for argv in table.values():  # warm the file cache and byte-code once, untimed
        time_once(argv)
    samples: dict[str, list[float]] = {name: [] for name in table}
    cpu: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.runs):
        for name, argv in table.items():
            wall, used = time_once(argv)
            samples[name].append(wall)
            cpu[name].append(used)
    floor = statistics.median(samples["floor: python -c pass"])
    load = os.getloadavg()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {args.runs} runs each"
    )
    print()
    print("| command | fastest s | median s | median - floor s | median CPU s | goal (median) |")
    print("|---|--:|--:|--:|--:|---|")
    for name, times in samples.items():
        median = statistics.median(times)
        if name.startswith("floor"):
            verdict = "(floor)"
        else:
            verdict = f"≤ {GOAL_SECONDS} s: {'met' if median <= GOAL_SECONDS else 'MISSED'}"
        print(
            f"| `{name}` | {min(times):.3f} | {median:.3f} | {median - floor:.3f} "
            f"| {statistics.median(cpu[name]):.3f} | {verdict} |"
        )


if __name__ == "__main__":
    main()
