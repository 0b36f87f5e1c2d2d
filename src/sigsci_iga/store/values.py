"""What the repository refuses to store: secrets (by key name) and values JSON cannot hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sigsci_iga.errors import InvalidInputError

#: Substrings of key names that would hold a secret; such keys are refused, not stored.
SECRET_MARKERS = (
    "token",
    "password",
    "passwd",
    "secret",
    "credential",
    "apikey",
    "api_key",
    "authorization",
    "cookie",
    "private_key",
)
# Task parameters and journal details also refuse raw HTTP headers: they carry the token.
_DETAIL_MARKERS = (*SECRET_MARKERS, "header")


def refuse_secrets(value: Any, path: str = "detail") -> None:
    """Raise `InvalidInputError` if any key at any depth (lists included) looks like a secret."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            lowered = str(key).lower()
            if any(marker in lowered for marker in _DETAIL_MARKERS):
                raise InvalidInputError(
                    f"{path}.{key}: secrets and headers are never stored in the repository"
                )
            refuse_secrets(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            refuse_secrets(item, f"{path}[{index}]")


def plain_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A JSON-compatible copy of `value`; anything JSON cannot hold is refused up front."""
    try:
        loaded: dict[str, Any] = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be JSON-compatible: {exc}") from exc
    return loaded
