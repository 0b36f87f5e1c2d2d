"""Building API paths safely: every segment is checked, then percent-encoded."""

from __future__ import annotations

import re
from urllib.parse import quote

from sigsci_iga.errors import InvalidInputError

API_PREFIX = "/api/v0"
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


def check_email(email: str) -> str:
    """Check an email used as a path segment; its case is kept (servers may match it exactly)."""
    value = check_segment(email, "email")
    if value.count("@") != 1 or value.startswith("@") or value.endswith("@"):
        raise InvalidInputError(f"email {email!r} is not an email address")
    return value


def normalize_email(email: str) -> str:
    """Check and lower-case an email used as an identity key."""
    return check_email(email).lower()


def api_path(*segments: tuple[str, str] | str) -> str:
    """Join segments under /api/v0; tuples (value, what) are checked and percent-encoded.

    Plain strings are literal path words of our own ("corps", "users") and are not encoded.
    """
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, tuple):
            value, what = segment
            parts.append(quote(check_segment(value, what), safe="@"))
        else:
            parts.append(segment)
    return API_PREFIX + "/" + "/".join(parts)
