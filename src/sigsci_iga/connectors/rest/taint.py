"""Values computed from secrets: marked while computed, masked where shown, real where sent.

A `Secret` wraps a JSON value that comes from a secret: a parameter declared `secret: true`, a
token obtained by an auth call, or anything the expression language computes from them. The
evaluator (expressions.py) carries the mark through every operation, so `params.token.toUpperCase()`
is as secret as the token, and so is a value chosen by a condition computed from a secret.

Containers may hold Secrets as leaves (the `params` binding holds each secret parameter so), but a
Secret's own value never holds one. The runtime unwraps values only to send them (`reveal`) and
shows them only masked (`masked`): a Secret reads as its `shown` text, which is `***` unless the
Secret is text joined from parts, where the parts that came from no secret stay readable
(`Bearer ***`). Masking by structure, not by searching for known secret text, is what keeps a
transformed secret (upper-cased, cut, replaced, URL-encoded) out of what is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "MASK",
    "Secret",
    "join_texts",
    "masked",
    "reveal",
    "secret_texts",
    "tainted",
]

MASK: Final = "***"


class Secret:
    """A value computed from a secret; `shown` is what a person or a journal may see instead."""

    __slots__ = ("shown", "value")

    def __init__(self, value: Any, shown: str = MASK) -> None:
        self.value = reveal(value)
        self.shown = shown

    def __repr__(self) -> str:
        return f"Secret({self.shown!r})"

    def __str__(self) -> str:
        # Code that forgets to reveal a value before sending it sends the mask, never the secret.
        return self.shown

    def __bool__(self) -> bool:
        raise TypeError("the truth of a secret value is read with reveal(), not bool()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(MASK)


def tainted(value: Any) -> bool:
    """Is the value, or anything inside it, computed from a secret?"""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Secret):
            return True
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def reveal(value: Any) -> Any:
    """The value to send: every Secret replaced by what it wraps (the value itself if none)."""
    if not tainted(value):
        return value
    return _replace(value, lambda secret: secret.value)


def masked(value: Any) -> Any:
    """The value to show: every Secret replaced by its shown text."""
    if not tainted(value):
        return value
    return _replace(value, lambda secret: secret.shown)


def _replace(value: Any, by: Any) -> Any:
    if isinstance(value, Secret):
        return by(value)
    if isinstance(value, Mapping):
        return {key: _replace(item, by) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replace(item, by) for item in value]
    return value


def secret_texts(value: Any) -> list[str]:
    """The real text of every string inside the Secrets of a value (to scrub echoes of it)."""
    found: list[str] = []
    pending: list[tuple[Any, bool]] = [(value, False)]
    while pending:
        item, inside = pending.pop()
        if isinstance(item, Secret):
            pending.append((item.value, True))
        elif isinstance(item, str):
            if inside:
                found.append(item)
        elif isinstance(item, Mapping):
            pending.extend((part, inside) for part in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((part, inside) for part in item)
    return found


def join_texts(parts: Iterable[str | Secret]) -> str | Secret:
    """Texts joined; a Secret if any part is one, showing only the parts that were not."""
    pieces = list(parts)
    if not any(isinstance(piece, Secret) for piece in pieces):
        return "".join(piece for piece in pieces if isinstance(piece, str))
    real = "".join(piece.value if isinstance(piece, Secret) else piece for piece in pieces)
    shown = "".join(piece.shown if isinstance(piece, Secret) else piece for piece in pieces)
    return Secret(real, shown)
