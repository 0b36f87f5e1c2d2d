"""The `sigsci-iga` command run in-process (Typer's CliRunner), with exactly the given settings.

In-process runs take milliseconds where a child process takes half a second, so tables of many
inputs can go through the real command. `main()` mounts `sim` on the same Typer app, so it is
mounted here once too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def _mounted() -> None:
    if not any(group.name == "sim" for group in cli_module.app.registered_groups):
        cli_module._mount_subcommands()


def invoke(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, stdin: str | None = None
) -> Outcome:
    """Run `sigsci-iga ARGS` with only `env`'s SIGSCI* variables set (the others are unset)."""
    _mounted()
    unset = {k: None for k in os.environ if k.startswith("SIGSCI") and k not in env}
    runner = CliRunner()
    previous = Path.cwd()
    CliState.config_file = None
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = runner.invoke(
            cli_module.app,
            list(args),
            env={**unset, "COLUMNS": "250", "NO_COLOR": "1", **env},
            input=stdin,
            catch_exceptions=True,
        )
    finally:
        os.chdir(previous)
        CliState.config_file = None
    crash = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = f"{type(result.exception).__name__}: {result.exception}"
    return Outcome(result.exit_code, result.stdout, result.stderr, crash)


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
