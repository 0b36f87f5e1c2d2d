"""Characters that hide what a text is."""

from __future__ import annotations

import re

#: C0 and C1 controls and DEL; Unicode format characters (bidi embeddings, overrides and
#: isolates, zero-width spaces and joiners, the BOM, tag characters); line and paragraph
#: separators; lone surrogates (undecodable bytes). None of them shows as itself on a terminal.
HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\ud800-\udfff]"
)
