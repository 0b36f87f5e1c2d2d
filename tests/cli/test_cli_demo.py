"""The simulator and the demo never talk to whatever else holds their port.

`sim serve` refuses a taken port in one line, takes a free one with `--port 0`, and prints the
`export` lines that point sigsci-iga at it; `scripts/demo.sh` refuses a taken
SIGSCI_IGA_DEMO_PORT and, left to choose, moves off a taken 8765.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"


@contextlib.contextmanager
def listening(port: int = 0) -> Iterator[int]:
    """A port something else listens on (if `port` is already taken, it stays taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            if port == 0:
                raise
        yield sock.getsockname()[1] if port == 0 else port
    finally:
        sock.close()


def child_env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    return {**env, "COLUMNS": "100", "NO_COLOR": "1", **more}


def sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  # our own CLI, fixed arguments
        [sys.executable, "-m", "sigsci_iga", "sim", "serve", "--users", "5", "--sites", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_sim_serve_refuses_a_taken_port_in_one_line() -> None:
    with listening() as port:
        server = sim("--port", str(port))
        _, err = server.communicate(timeout=120)
    assert server.returncode == 1
    [line] = err.splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port 0" in line


def test_sim_serve_on_port_0_prints_exports_that_point_the_cli_at_it(tmp_path: Path) -> None:
    server = sim("--port", "0")
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while len(exports) < 4:
            assert time.monotonic() < deadline, "no export lines"
            line = server.stdout.readline()
            assert line, "sim serve ended before printing its export lines"
            found = re.fullmatch(r"  export (SIGSCI_\w+)=(.*)\n", line)
            if found:
                exports[found[1]] = shlex.split(found[2])[0]
        assert set(exports) == {"SIGSCI_API_URL", "SIGSCI_EMAIL", "SIGSCI_TOKEN", "SIGSCI_CORP"}
        assert not exports["SIGSCI_API_URL"].endswith(":0")
        env = child_env(**exports, SIGSCI_IGA_DATABASE_URL=f"sqlite:///{tmp_path / 'iga.db'}")
        checked = subprocess.run(  # our own CLI, fixed arguments
            [sys.executable, "-m", "sigsci_iga", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.splitlines()[-1] == "ok"
    finally:
        stop(server)


def demo(**env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  # the project's own script
        ["bash", str(DEMO)],  # noqa: S607  # bash from PATH, as people run the demo
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A directory of its own: runs on several pytest workers never share a log or a database.
        env=child_env(SIGSCI_IGA_DEMO_DIR=tempfile.mkdtemp(prefix="sigsci-iga-demo-"), **env),
        cwd=ROOT,
        start_new_session=True,
    )


def test_the_demo_refuses_a_taken_demo_port() -> None:
    with listening() as port:
        run = demo(SIGSCI_IGA_DEMO_PORT=str(port))
        out, _ = run.communicate(timeout=300)
    assert run.returncode == 1
    assert "the simulator did not start:" in out
    assert f"error: cannot listen on 127.0.0.1:{port}" in out
    assert "sigsci-iga check" not in out


@pytest.mark.timeout(300)
def test_the_demo_moves_off_a_taken_8765_to_a_free_port() -> None:
    with listening(8765):
        run = demo()
        try:
            assert run.stdout is not None
            lines = []
            while not any(each.startswith("simulator: ") for each in lines):
                line = run.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
        finally:
            stop(run)
    assert "port 8765 is taken; the simulator takes a free port instead\n" in lines
    url = lines[-1].removeprefix("simulator: ").strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert not url.endswith(":8765")


@pytest.mark.timeout(600)
def test_the_readme_demo_runs_to_its_end() -> None:
    with listening() as taken:
        pass
    # A port that was free a moment ago; the demo refuses it if something took it since.
    run = demo(SIGSCI_IGA_DEMO_PORT=str(taken))
    out, _ = run.communicate(timeout=540)
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert "1 write calls would be sent; nothing was changed" in out
    assert "== sigsci-iga journal list" in out
