"""What every command shares: the settings and an application context, built on demand."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sigsci_iga import app
from sigsci_iga.cli.output import fail
from sigsci_iga.errors import SigsciIgaError

if TYPE_CHECKING:
    from sigsci_iga.settings import Settings


T = TypeVar("T")


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a use case that talks to a corp to its end, on an event loop of its own."""
    # asyncio loads here, for the commands that need a loop, not for `--help`.
    import asyncio  # noqa: PLC0415

    return asyncio.run(work)


class CliState:
    """Options of the root command, read by every subcommand."""

    config_file: Path | None = None


def settings() -> Settings:
    # pydantic is imported here, by the first command that needs settings, not by `--help`.
    from sigsci_iga.settings import load_settings  # noqa: PLC0415

    try:
        return load_settings(CliState.config_file)
    except SigsciIgaError as exc:
        fail(exc)


@contextmanager
def session() -> Iterator[app.AppContext]:
    """An application context for one command; an error from a use case ends the command."""
    ctx = app.AppContext(settings())
    try:
        yield ctx
    except SigsciIgaError as exc:
        fail(exc)
    finally:
        ctx.close()
