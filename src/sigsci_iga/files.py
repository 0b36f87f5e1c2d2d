"""Reading files people name: regular files only, opened without ever blocking.

A FIFO or a device given where a file belongs would make `open()` wait for a writer forever,
and a directory fails with an error that says little; both are refused at once, by name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sigsci_iga.errors import InvalidInputError, SigsciIgaError


def _open_regular(path: Path, what: str, error: type[SigsciIgaError]) -> int:
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be opened: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{what} {str(path)!r} is not a regular file")
    return fd


def check_regular_file(
    path: str | Path, what: str, *, error: type[SigsciIgaError] = InvalidInputError
) -> Path:
    """The path, if it names a readable regular file; `error` names it otherwise."""
    path = Path(path)
    os.close(_open_regular(path, what, error))
    return path


def read_regular_file(
    path: str | Path, what: str, *, error: type[SigsciIgaError] = InvalidInputError
) -> bytes:
    """The bytes of a regular file; `error` names the file when it is anything else."""
    path = Path(path)
    fd = _open_regular(path, what, error)
    try:
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from None


def check_text_file(
    path: str | Path, what: str, *, error: type[SigsciIgaError] = InvalidInputError
) -> Path:
    """The path, if it names a regular file of UTF-8 text; `error` names it otherwise.

    For files a reader we do not own will open itself (package loaders): what they would choke
    on is refused here, by name, before they see it.
    """
    path = Path(path)
    try:
        read_regular_file(path, what, error=error).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{what} {str(path)!r} is not UTF-8 text") from None
    return path
