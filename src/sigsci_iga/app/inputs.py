"""Checks of the values any interface passes in: ids, counts, durations and filter choices.

Use cases call them before they touch the repository or a target, so a mistake changes
nothing, and every interface refuses the same values with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sigsci_iga.domain.text import did_you_mean
from sigsci_iga.errors import InvalidInputError

#: Ids are 64-bit signed integers in both databases.
MAX_ID = 2**63 - 1


def check_id(value: int, what: str) -> int:
    """A positive id a database can hold."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidInputError(f"{what} must be a whole number from 1 to {MAX_ID}")
    return value


def check_count(value: int, what: str, *, minimum: int = 1, maximum: int = MAX_ID) -> int:
    """A whole number within bounds (a batch size, a limit of rows or tasks)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInputError(f"{what} must be a whole number from {minimum} to {maximum}")
    return value


def check_seconds(value: float, what: str, *, minimum: float = 0.0, maximum: float) -> float:
    """A finite duration above `minimum` (exclusive when 0) and at most `maximum`."""
    number = float(value)
    if not math.isfinite(number) or number > maximum or number < minimum or number <= 0:
        low = f"more than {minimum:g}" if minimum <= 0 else f"at least {minimum:g}"
        raise InvalidInputError(f"{what} must be a number of seconds {low} and at most {maximum:g}")
    return number


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """One of `choices`, exactly; otherwise the known values and the closest one are named."""
    known = sorted(dict.fromkeys(choices))
    if value in known:
        return value
    hint = did_you_mean(value, known)
    raise InvalidInputError(f"{what} {value!r} is not one of {', '.join(known)}{hint}")
