"""Characters that hide what a text is, and the checks on names people give."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sigsci_iga.errors import InvalidInputError

#: C0 and C1 controls and DEL; Unicode format characters (bidi embeddings, overrides and
#: isolates, zero-width spaces and joiners, the BOM, tag characters); line and paragraph
#: separators; lone surrogates (undecodable bytes). None of them shows as itself on a terminal.
HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\ud800-\udfff]"
)
#: Longer names are mistakes (a pasted paragraph), not names.
MAX_NAME_LENGTH = 255


def check_name(value: str, what: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A name (endpoint, corp, site) as given, or InvalidInputError saying what is wrong.

    Refused: empty, surrounding spaces, longer than `max_length`, and control, invisible or
    direction-changing characters, which would make two different names look the same.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} is empty")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is longer than {max_length} characters")
    hidden = HIDDEN.search(value)
    if hidden:
        raise InvalidInputError(
            f"{what} {value!r} contains a control, invisible or direction-changing character "
            f"(U+{ord(hidden.group()):04X})"
        )
    if value != value.strip():
        raise InvalidInputError(f"{what} {value!r} has leading or trailing spaces")
    return value


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """`; did you mean 'X'?` for the known value closest to `value` (any case), else ``."""
    by_lower = {choice.lower(): choice for choice in known}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""
