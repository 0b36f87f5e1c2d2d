"""Values from data inside URL paths: every segment is checked, then percent-encoded, and every
URL is checked after the HTTP library has parsed it: the path sent is the path built."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import httpx

from sigsci_iga.domain.text import HIDDEN
from sigsci_iga.errors import InvalidInputError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: RFC 5321's limit on an address; no site or corp name needs more, and longer is a mistake.
MAX_SEGMENT_LENGTH = 254


def segment_problem(value: object) -> str | None:
    """Why a value cannot name one resource in a URL path, or None when it can.

    Refused: empty; `.` or `..` (which a URL library or a proxy resolves to "this" or "the
    parent"); a slash or backslash; control, invisible or direction-changing characters; any
    of these spelled percent-encoded (`%2e`, `%2F`), which a server may decode once more;
    surrounding spaces; more than `MAX_SEGMENT_LENGTH` characters.
    """
    if not isinstance(value, str) or value.strip() == "":
        return "is empty"
    if len(value) > MAX_SEGMENT_LENGTH:
        return f"is longer than {MAX_SEGMENT_LENGTH} characters"
    for form, suffix in ((value, ""), (unquote(value), " once percent-decoded")):
        if "/" in form or "\\" in form:
            return f"contains a slash{suffix}"
        if form in (".", "..") or ".." in form:
            return f"is or contains a '.' or '..' path step{suffix}"
        if _CONTROL.search(form):
            return f"contains a control character{suffix}"
        if HIDDEN.search(form):
            return f"contains an invisible or direction-changing character{suffix}"
    if value != value.strip():
        return "has leading or trailing spaces"
    return None


def check_segment(value: str, what: str) -> str:
    """Refuse a segment that could change which resource a path names; return it unchanged."""
    problem = segment_problem(value)
    if problem is not None:
        shown = "" if problem == "is empty" else f" {value!r}"
        raise InvalidInputError(f"{what}{shown} {problem}")
    return value


def encode_segment(value: str, what: str) -> str:
    """Check a segment, then percent-encode it (`@` stays readable, as emails are keys)."""
    return quote(check_segment(value, what), safe="@")


def check_sent_path(url: httpx.URL, built: str) -> None:
    """Refuse a request whose URL, as the HTTP library will send it, names another path.

    `built` is the percent-encoded path we assembled; a library that normalises dot segments
    or re-encodes characters would otherwise send a request about another resource.
    """
    sent = url.raw_path.decode("ascii", "replace").split("?", 1)[0]
    if sent != built:
        raise InvalidInputError(f"the path sent would be {sent!r}, not the path built {built!r}")
