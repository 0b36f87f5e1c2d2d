"""The `sigsci-iga` command run in-process (Typer's CliRunner), with exactly the given settings.

In-process runs take milliseconds where a child process takes half a second, so tables of many
inputs can go through the real command.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from sigsci_iga.cli import app as cli_module
from sigsci_iga.cli.context import CliState


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    #: An exception that escaped the command (not a clean exit), with its type's name.
    crash: str | None

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


@functools.cache
def _command() -> Any:
    """The click command Typer builds from the app: built once, as building takes ~150 ms."""
    return typer.main.get_command(cli_module.app)


def invoke(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, stdin: str | None = None
) -> Outcome:
    """Run `sigsci-iga ARGS` with only `env`'s SIGSCI* variables set (the others are unset).

    What Typer's CliRunner.invoke does, on a command built once.
    """
    unset = {k: None for k in os.environ if k.startswith("SIGSCI") and k not in env}
    runner = CliRunner()
    previous = Path.cwd()
    CliState.config_file = None
    code, crash = 0, None
    try:
        if cwd is not None:
            os.chdir(cwd)
        with runner.isolation(
            input=stdin, env={**unset, "COLUMNS": "250", "NO_COLOR": "1", **env}
        ) as streams:
            try:
                _command().main(args=list(args), prog_name="sigsci-iga")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Exception as exc:  # noqa: BLE001  # an escaped exception is what tests look for
                code, crash = 1, f"{type(exc).__name__}: {exc}"
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                stdout = streams[0].getvalue().decode()
                stderr = streams[1].getvalue().decode()
    finally:
        os.chdir(previous)
        CliState.config_file = None
    if crash is None and "error: unexpected " in stderr:
        # The command turned a bug into one line; for the tests it is still a crash.
        crash = stderr.strip()
    return Outcome(code, stdout, stderr, crash)


def fingerprint(path: Path) -> str | None:
    """The bytes of a SQLite file and its write-ahead log, hashed; None when neither exists."""
    parts = [path, path.with_name(path.name + "-wal")]
    if not any(p.exists() for p in parts):
        return None
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if part.exists() else b"<absent>")
    return digest.hexdigest()


@dataclass
class ImportedCorp:
    """The command's settings, its working directory and the repository file."""

    env: dict[str, str]
    directory: Path
    db: Path

    def run(self, *args: str, **env: str) -> Outcome:
        return invoke(*args, env={**self.env, **env}, cwd=self.directory)

    def state(self) -> str | None:
        return fingerprint(self.db)
