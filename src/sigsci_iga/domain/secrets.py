"""References to secrets: where an endpoint's token or password is found, never the value itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sigsci_iga.errors import InvalidInputError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_PATH = 4096


@dataclass(frozen=True, slots=True)
class SecretRef:
    """`env:NAME` (an environment variable) or `file:PATH` (a mounted secret file)."""

    kind: Literal["env", "file"]
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_secret_ref(text: str, what: str = "secret reference") -> SecretRef:
    """Read `env:NAME` or `file:/absolute/path`; anything else (a pasted secret) is refused."""
    kind, sep, target = text.partition(":")
    if sep and kind == "env" and _ENV_NAME.fullmatch(target):
        return SecretRef("env", target)
    if (
        sep
        and kind == "file"
        and target.startswith("/")
        and len(target) <= _MAX_PATH
        and not any(ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return SecretRef("file", target)
    # Never echo the text: it may be the secret itself, pasted where a reference belongs.
    raise InvalidInputError(
        f"{what} must be env:VARIABLE_NAME or file:/absolute/path (the value given is not shown)"
    )
