"""`sigsci-iga check`: the installed console command, run as a process against a loopback simulator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOKEN,
    OBSERVER_EMAIL,
    OBSERVER_TOKEN,
    SimConfig,
    serve_in_thread,
)

SITES = 5
CONSOLE_SCRIPT = Path(sys.executable).with_name("sigsci-iga")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


def sigsci_iga(*args: str, env: dict[str, str], cwd: Path, module: bool = False) -> Result:
    """Run the real command in a child process with exactly the given SIGSCI_* variables."""
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SIGSCI") and k != "FORCE_COLOR"
    }
    child_env.update(env)
    command = [sys.executable, "-m", "sigsci_iga"] if module else [str(CONSOLE_SCRIPT)]
    done = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
        [*command, *args],
        env=child_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def credentials(url: str, **changes: str | None) -> dict[str, str]:
    env: dict[str, str | None] = {
        "SIGSCI_API_URL": url,
        "SIGSCI_EMAIL": DEMO_EMAIL,
        "SIGSCI_TOKEN": DEMO_TOKEN,
        "SIGSCI_CORP": DEMO_CORP,
        **changes,
    }
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def server() -> Iterator[str]:
    with serve_in_thread(SimConfig(users=30, sites=SITES, seed=3)) as url:
        yield url


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A loopback port that is bound but never listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_check_passes_and_shows_the_corp_the_role_the_sites_and_the_token_policy(
    server: str, tmp_path: Path
) -> None:
    result = sigsci_iga("check", env=credentials(server), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["corp", DEMO_CORP, "(Test", "Corp)"]
    assert lines[1].split() == ["caller", DEMO_EMAIL, "(owner)"]
    assert lines[2].split() == ["sites", str(SITES), "visible"]
    assert lines[3].startswith("tokens")
    assert "API tokens do not expire (apiTokenMaxAge = 0)" in lines[3]
    assert "warning" not in result.stdout
    assert lines[-1] == "ok"
    assert DEMO_TOKEN not in result.stdout


def test_check_warns_when_the_corp_makes_api_tokens_expire(tmp_path: Path) -> None:
    config = SimConfig(users=30, sites=SITES, seed=3, token_expiry_seconds=7 * 86400)
    with serve_in_thread(config) as url:
        result = sigsci_iga("check", env=credentials(url), cwd=tmp_path)
    assert result.code == 0, result.stderr
    tokens = next(line for line in result.stdout.splitlines() if line.startswith("tokens"))
    assert "warning:" in tokens
    assert "expire 604800 s (~7.0 days)" in tokens
    assert "rotate SIGSCI_TOKEN" in tokens


def test_check_reports_what_an_observer_token_can_see(server: str, tmp_path: Path) -> None:
    env = credentials(server, SIGSCI_EMAIL=OBSERVER_EMAIL, SIGSCI_TOKEN=OBSERVER_TOKEN)
    result = sigsci_iga("check", env=env, cwd=tmp_path, module=True)
    assert result.code == 0, result.stderr
    assert f"{OBSERVER_EMAIL} (observer)" in result.stdout
    assert "sites     2 visible" in result.stdout  # the demo observer belongs to two sites


def test_check_works_with_a_password_session_instead_of_a_token(
    server: str, tmp_path: Path
) -> None:
    env = credentials(server, SIGSCI_TOKEN=None, SIGSCI_PASSWORD=DEMO_PASSWORD)
    result = sigsci_iga("check", env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert f"{DEMO_EMAIL} (owner)" in result.stdout
    assert DEMO_PASSWORD not in result.stdout + result.stderr


def test_check_with_a_bad_token_fails_with_one_line_naming_the_401(
    server: str, tmp_path: Path
) -> None:
    bad = "bad-token-0123456789"
    result = sigsci_iga("check", env=credentials(server, SIGSCI_TOKEN=bad), cwd=tmp_path)
    assert result.code == 3
    assert result.stdout == ""
    assert len(result.error_lines) == 1
    assert "401" in result.stderr
    assert bad not in result.stderr
    assert DEMO_TOKEN not in result.stderr


def test_check_with_an_unknown_corp_fails_with_exit_4_and_one_line(
    server: str, tmp_path: Path
) -> None:
    result = sigsci_iga("check", env=credentials(server, SIGSCI_CORP="nosuchcorp"), cwd=tmp_path)
    assert result.code == 4
    assert len(result.error_lines) == 1
    assert "404" in result.stderr
    assert "Corp not found" in result.stderr
    assert DEMO_TOKEN not in result.stderr


def test_check_against_an_unreachable_host_fails_with_exit_5_and_one_line(
    closed_port_url: str, tmp_path: Path
) -> None:
    result = sigsci_iga("check", env=credentials(closed_port_url), cwd=tmp_path)
    assert result.code == 5
    assert result.stdout == ""
    assert len(result.error_lines) == 1, result.stderr
    assert "cannot connect" in result.stderr
    assert DEMO_TOKEN not in result.stderr


def test_check_without_a_token_fails_with_exit_2_naming_sigsci_token(
    server: str, tmp_path: Path
) -> None:
    result = sigsci_iga("check", env=credentials(server, SIGSCI_TOKEN=None), cwd=tmp_path)
    assert result.code == 2
    assert len(result.error_lines) == 1
    assert "SIGSCI_TOKEN" in result.stderr
