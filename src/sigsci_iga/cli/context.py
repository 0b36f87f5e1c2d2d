"""What every command shares: the settings and an application context, built on demand."""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from sigsci_iga import app
from sigsci_iga.cli.output import fail, print_traceback
from sigsci_iga.errors import AuthError, SigsciIgaError

if TYPE_CHECKING:
    from sigsci_iga.settings import Settings


T = TypeVar("T")


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a use case that talks to a corp to its end, on an event loop of its own."""
    # asyncio loads here, for the commands that need a loop, not for `--help`.
    import asyncio  # noqa: PLC0415

    return asyncio.run(work)


#: What a person does about a credential the target refused; the server's words do not say.
AUTH_HINT = (
    "check SIGSCI_EMAIL and SIGSCI_TOKEN (or the endpoint's --token-env/--token-file "
    "reference): the token must belong to that email and be valid for the corp"
)


class CliState:
    """Options of the root command, read by every subcommand."""

    config_file: Path | None = None
    #: `--debug`: show the traceback of an error as well as its one line.
    debug: bool = False


def settings() -> Settings:
    # pydantic is imported here, by the first command that needs settings, not by `--help`.
    from sigsci_iga.settings import load_settings  # noqa: PLC0415

    try:
        return load_settings(CliState.config_file)
    except SigsciIgaError as exc:
        end(exc)


def end(error: SigsciIgaError) -> NoReturn:
    """End the command on a use case's error: one line, the fix where it is known, its code."""
    if CliState.debug:
        print_traceback(error)
    if isinstance(error, AuthError):
        fail(f"{error}; {AUTH_HINT}", code=error.exit_code)
    fail(error)


@contextmanager
def session() -> Iterator[app.AppContext]:
    """An application context for one command; an error from a use case ends the command.

    Anything else that escapes is a bug: one line names it (not its text, which may carry a
    database URL or a server's words), and `--debug` shows the traceback.
    """
    ctx = app.AppContext(settings())
    try:
        yield ctx
    except SigsciIgaError as exc:
        end(exc)
    except BrokenPipeError:
        # The reader of our output closed it (`accounts list --json | head`): stop quietly and
        # successfully, as ripgrep does, rather than report what the reader chose. Standard
        # output now goes nowhere, so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except Exception as exc:
        if CliState.debug:
            raise
        fail(
            f"unexpected {type(exc).__name__}; run again with --debug for the traceback "
            "and report it"
        )
    finally:
        ctx.close()
