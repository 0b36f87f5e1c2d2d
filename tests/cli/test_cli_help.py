"""Help people can rely on: every command and option explains itself, `--version`, shell
completion that completes, and a README command reference that is the command tree's own.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cli_inprocess import invoke
from typer.core import TyperArgument, TyperOption

ROOT = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "command_reference", ROOT / "scripts" / "command_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = load_generator()
COMMANDS: list[tuple[tuple[str, ...], Any]] = list(
    REFERENCE.walk(REFERENCE.command_tree(), ("sigsci-iga",))
)


def test_the_tree_holds_every_command_group() -> None:
    names = {path[1] for path, _ in COMMANDS if len(path) > 1}
    assert {"import", "accounts", "journal", "packages", "sim", "schedules", "tokens"} <= names
    assert len(COMMANDS) >= 60


def test_every_command_option_and_argument_has_help() -> None:
    missing = []
    for path, command in COMMANDS:
        where = " ".join(path)
        if not REFERENCE.summary(command):
            missing.append(f"{where}: the command")
        for param in command.params:
            if isinstance(param, TyperOption | TyperArgument) and not (param.help or "").strip():
                missing.append(f"{where}: {param.name}")
    assert missing == []


def test_the_readme_command_reference_is_generated_from_the_command_tree() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert REFERENCE.in_readme(readme) == REFERENCE.reference(), (
        "README.md's command reference is stale: "
        ".venv/bin/python scripts/command_reference.py --write"
    )


@pytest.mark.parametrize(
    ("path", "command"),
    [(path, command) for path, command in COMMANDS if len(path) > 1],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_every_option_the_reference_names_is_in_the_commands_help(
    path: tuple[str, ...], command: Any
) -> None:
    shown = invoke(*path[1:], "--help", env={"COLUMNS": "250"})
    assert shown.code == 0, shown.stderr
    assert REFERENCE.summary(command).split(" ")[0] in shown.stdout
    for param in command.params:
        if isinstance(param, TyperOption) and not param.hidden:
            assert param.opts[0] in shown.stdout, (path, param.opts)


def test_version_prints_the_installed_version() -> None:
    shown = invoke("--version", env={})
    assert shown.code == 0
    assert shown.stdout == f"sigsci-iga {metadata.version('sigsci-iga')}\n"


def complete(words: str, index: int) -> list[str]:
    """What bash completion offers for `words` with the cursor on word `index`."""
    script = Path(sys.executable).parent / "sigsci-iga"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")},
        "_SIGSCI_IGA_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(index),
    }
    done = subprocess.run(  # noqa: S603  # our own console script
        [str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_completes_commands_subcommands_and_options() -> None:
    assert complete("sigsci-iga acc", 1) == ["accounts"]
    assert set(complete("sigsci-iga journal ", 2)) == {"list", "verify", "export"}
    assert complete("sigsci-iga accounts list --st", 3) == ["--status"]
    assert "--wide" in complete("sigsci-iga journal list --", 3)


def test_the_completion_script_names_the_variable_it_completes_with() -> None:
    shown = invoke("--show-completion", "bash", env={})
    assert shown.code == 0
    assert "_SIGSCI_IGA_COMPLETE=complete_bash" in shown.stdout
