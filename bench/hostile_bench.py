"""Hostile-answer benchmark: how long and how much memory `sigsci-iga import` takes to refuse.

Run by hand (not part of the test suite):

    .venv/bin/python bench/hostile_bench.py

Each scenario runs `python -m sigsci_iga import --full` in a child process against the test
suite's hostile server (`tests/hostile/hostile_server.py`) on loopback, after one good import;
the figures are the child's wall-clock seconds and its peak resident set size (from `wait4`).
The floor is a standard-library child that starts, reads the good users list once with
`urllib` and exits: what any refusal costs at least (process start and one request).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hostile"))

from hostile_server import PREFIX, TOKEN, Hostile, gzip_bomb, serve  # noqa: E402  # path above
from test_hostile_server import Product  # noqa: E402  # path above

SCENARIOS: list[tuple[str, dict[str, str]]] = [
    ("trickle", {"SIGSCI_IGA_TIMEOUT": "2"}),
    ("gzip_bomb", {}),
    ("huge_body", {"SIGSCI_IGA_MAX_BODY_BYTES": str(8 * 2**20)}),
    ("deep_users", {}),
    ("deep_sites", {}),
    ("endless_sites", {"SIGSCI_IGA_MAX_SITES": "250"}),
    ("stuck_next", {}),
    ("repeat_page", {}),
]

FLOOR = """
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"x-api-token": sys.argv[2]})
urllib.request.urlopen(request, timeout=30).read()
"""


def floor(hostile: Hostile) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603  # our own interpreter, fixed arguments
        [sys.executable, "-c", FLOOR, hostile.base_url + PREFIX + "/users", TOKEN]
    )
    _, _, usage = os.wait4(proc.pid, 0)
    return time.monotonic() - started, usage.ru_maxrss * 1024


def main() -> None:
    gzip_bomb()  # built once, before any timing
    with serve(Hostile()) as hostile:
        product = Product(hostile, Path(tempfile.mkdtemp(prefix="hostile-bench-")))
        good = product.run("import", "--full")
        seconds, peak = floor(hostile)
        print(f"{'scenario':<14} {'exit':>4} {'seconds':>8} {'peak MiB':>9}  message")
        print(f"{'floor (urllib)':<14} {0:>4} {seconds:>8.1f} {peak / 2**20:>9.0f}")
        print(
            f"{'good import':<14} {good.code:>4} {good.seconds:>8.1f} {good.peak_bytes / 2**20:>9.0f}"
        )
        for mode, extra in SCENARIOS:
            hostile.reset()
            hostile.mode = mode
            child = product.run("import", "--full", **extra)
            message = child.stderr.strip().splitlines()[-1][:100] if child.stderr.strip() else ""
            print(
                f"{mode:<14} {child.code:>4} {child.seconds:>8.1f} "
                f"{child.peak_bytes / 2**20:>9.0f}  {message}"
            )


if __name__ == "__main__":
    main()
