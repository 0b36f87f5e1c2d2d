"""Rendering for the CLI: one console each for results and for diagnostics."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from sigsci_iga.errors import SigsciIgaError


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    """One JSON document on standard output, nothing else (for scripts and jq)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def fail(error: SigsciIgaError | str, *, code: int | None = None) -> NoReturn:
    """End the command with a one-line reason on standard error."""
    message = str(error)
    exit_code = (
        code if code is not None else (error.exit_code if isinstance(error, SigsciIgaError) else 1)
    )
    stderr().print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(exit_code)
