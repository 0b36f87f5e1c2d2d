"""What every command shares: the settings and an application context, built on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sigsci_iga.app import AppContext
from sigsci_iga.cli.output import fail
from sigsci_iga.errors import SigsciIgaError
from sigsci_iga.settings import Settings, load_settings


class CliState:
    """Options of the root command, read by every subcommand."""

    config_file: Path | None = None


def settings() -> Settings:
    try:
        return load_settings(CliState.config_file)
    except SigsciIgaError as exc:
        fail(exc)


@contextmanager
def session() -> Iterator[AppContext]:
    """An application context for one command; an error from a use case ends the command."""
    ctx = AppContext(settings())
    try:
        yield ctx
    except SigsciIgaError as exc:
        fail(exc)
    finally:
        ctx.close()
