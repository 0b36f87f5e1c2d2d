"""Resolving an endpoint's secret references at the moment a connector needs them."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from pydantic import SecretStr

from sigsci_iga.domain.secrets import SecretRef, parse_secret_ref
from sigsci_iga.errors import ConfigError

#: A mounted secret is a token or a password, not a document.
MAX_SECRET_FILE_BYTES = 64 * 1024


def resolve_secret(ref: SecretRef, environ: Mapping[str, str], what: str) -> SecretStr:
    """The secret a reference names; ConfigError names the reference, never a value."""
    if ref.kind == "env":
        value = environ.get(ref.target, "")
        if not value.strip():
            raise ConfigError(f"{what}: environment variable {ref.target} is not set or empty")
        return SecretStr(value.strip())
    return SecretStr(_read_secret_file(ref.target, what))


def _read_secret_file(path: str, what: str) -> str:
    try:
        # O_NONBLOCK: a FIFO put where a file belongs must fail now, not hang the process.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot open secret file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what}: secret file {path} is not a regular file")
        if info.st_size > MAX_SECRET_FILE_BYTES:
            raise ConfigError(
                f"{what}: secret file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes"
            )
        data = os.read(fd, MAX_SECRET_FILE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: secret file {path} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{what}: secret file {path} is empty")
    return text


def resolve_credentials(
    credentials: Mapping[str, str], environ: Mapping[str, str], endpoint: str
) -> dict[str, SecretStr]:
    """Every stored reference of an endpoint, resolved."""
    return {
        name: resolve_secret(
            parse_secret_ref(ref, f"endpoint {endpoint!r} credentials.{name}"),
            environ,
            f"endpoint {endpoint!r} {name}",
        )
        for name, ref in credentials.items()
    }
