"""Signal Sciences API paths: literal words and checked, encoded segments under /api/v0."""

from __future__ import annotations

from sigsci_iga.connectors.http.segments import encode_segment

API_PREFIX = "/api/v0"


def api_path(*segments: tuple[str, str] | str) -> str:
    """Join segments under /api/v0; tuples (value, what) are checked and percent-encoded.

    Plain strings are literal path words of our own ("corps", "users") and are not encoded.
    """
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, tuple):
            value, what = segment
            parts.append(encode_segment(value, what))
        else:
            parts.append(segment)
    return API_PREFIX + "/" + "/".join(parts)
