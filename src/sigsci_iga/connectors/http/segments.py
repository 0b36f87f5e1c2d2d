"""Values from data inside URL paths: every segment is checked, then percent-encoded."""

from __future__ import annotations

import re
from urllib.parse import quote

from sigsci_iga.errors import InvalidInputError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_segment(value: str, what: str) -> str:
    """Refuse a segment that could change which resource a path names; return it unchanged."""
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidInputError(f"{what} is empty")
    if "/" in value or "\\" in value:
        raise InvalidInputError(f"{what} {value!r} contains a slash")
    if ".." in value:
        raise InvalidInputError(f"{what} {value!r} contains '..'")
    if _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value!r} contains a control character")
    if value != value.strip():
        raise InvalidInputError(f"{what} {value!r} has leading or trailing spaces")
    return value


def encode_segment(value: str, what: str) -> str:
    """Check a segment, then percent-encode it (`@` stays readable, as emails are keys)."""
    return quote(check_segment(value, what), safe="@")
