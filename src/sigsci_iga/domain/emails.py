"""Email addresses as account keys: the one place they are checked and normalised."""

from __future__ import annotations

import re

from sigsci_iga.domain.text import HIDDEN
from sigsci_iga.errors import InvalidInputError

#: RFC 5321's limit on a forward path; longer values are not addresses anyone can receive at.
MAX_EMAIL_LENGTH = 254
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f/\\]")


def check_address(value: str, what: str = "email") -> str:
    """An address as a target spells it, checked and returned unchanged (its case is kept).

    Targets may match emails in paths exactly, so calls name an account as the target spelled
    it; the same rules as `normalize_email` apply.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text")
    if not value.strip():
        raise InvalidInputError(f"{what} is empty")
    if value != value.strip():
        raise InvalidInputError(f"{what} {value!r} has leading or trailing spaces")
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidInputError(f"{what} is longer than {MAX_EMAIL_LENGTH} characters")
    if _FORBIDDEN.search(value):
        raise InvalidInputError(f"{what} {value!r} contains a space, slash or control character")
    if HIDDEN.search(value):
        # Bidi overrides and zero-width characters make one address look like another.
        raise InvalidInputError(
            f"{what} {value!r} contains an invisible or direction-changing character"
        )
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise InvalidInputError(f"{what} {value!r} is not an email address")
    # Dots separate atoms: none may be empty (`a..b`, `.a`, `a.`), and `..` is also what turns a
    # path segment into "the parent".
    if (
        ".." in value
        or local[0] == "."
        or local[-1] == "."
        or domain[0] == "."
        or domain[-1] == "."
    ):
        raise InvalidInputError(f"{what} {value!r} has an empty part between dots")
    return value


def normalize_email(value: str, what: str = "email") -> str:
    """The account key for an address: trimmed and lower-cased; anything unaddressable is refused."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text")
    return check_address(value.strip(), what).lower()


def email_key(value: str) -> str:
    """The key a lookup compares with (no checks: a bad address simply matches nothing)."""
    return value.strip().lower()
