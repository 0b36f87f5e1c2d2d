"""The one place that turns HTTP responses and transport failures into the error tree.

Nothing else in the project inspects status codes. Messages carry the method, path, status and the
server's short message; never headers, bodies beyond `message`, or credentials.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from sigsci_iga.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    TransientError,
    UnexpectedResponseError,
)

_MAX_MESSAGE = 200
#: No answer of the APIs we read nests deeper than a few levels; deeper is an attack on the
#: parser (Python's own stops with a RecursionError near 1,000).
MAX_JSON_DEPTH = 64
RATE_LIMIT_TEXT = "rate limit exceeded"
_NOT_FOUND_HINTS = ("not found", "does not exist", "no such")
_CONFLICT_HINTS = ("already exists", "already a member", "already invited")


#: A run of base64 text (either alphabet), with its padding.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_URL_SAFE = str.maketrans("+/", "-_")
_MIN_SECRET = 4
_MIN_BASE64_CORE = 6


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove any secret that a server (or exception) might echo back, in any spelling.

    A secret is found in any letter case, percent-encoded (any mix of escaped and plain
    characters, `+` for a space, either hex case) and base64-encoded (either alphabet, padded
    or not, alone or inside a longer value such as the `user:secret` of a basic-auth header).
    """
    chosen = tuple(s for s in secrets if s and len(s) >= _MIN_SECRET)
    for secret in chosen:
        text = _spelled(secret).sub("***", text)
    if chosen:
        text = _BASE64_RUN.sub(lambda run: _scrub_base64_run(run.group(), chosen), text)
    return text


@functools.lru_cache(maxsize=64)
def _spelled(secret: str) -> re.Pattern[str]:
    """The secret, each character plain or percent-encoded, case ignored."""
    parts = []
    for char in secret:
        forms = [re.escape(char), "".join(f"%{byte:02x}" for byte in char.encode())]
        if char == " ":
            forms.append(r"\+")
        parts.append("(?:" + "|".join(forms) + ")")
    return re.compile("".join(parts), re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _base64_cores(secret: str) -> frozenset[str]:
    """The part of the secret's base64 text that does not depend on what surrounds it.

    Base64 turns 3 bytes into 4 characters, so inside a longer value the secret starts at one of
    three byte offsets; at each, the characters made only of the secret's bits are the same
    whatever comes before or after. Upper- and lower-cased secrets are encoded too.
    """
    cores: set[str] = set()
    for variant in {secret, secret.upper(), secret.lower()}:
        data = variant.encode()
        for offset in range(3):
            encoded = base64.b64encode(bytes(offset) + data).decode()
            core = encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
            # Shorter cores (secrets of 5 bytes or fewer) would match ordinary words.
            if len(core) >= _MIN_BASE64_CORE:
                cores.update((core, core.translate(_URL_SAFE)))
    return frozenset(cores)


def _scrub_base64_run(run: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if any(core in run for core in _base64_cores(secret)):
            return "***"
    return run


def _short(text: str, secrets: Iterable[str] = ()) -> str:
    """One line of at most `_MAX_MESSAGE` characters, scrubbed before it is cut.

    Cutting first could leave half a secret that no longer matches; scrubbing again after
    joining the lines catches a secret that a line break had split.
    """
    secrets = tuple(secrets)
    text = scrub(" ".join(scrub(text, secrets).split()), secrets)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _server_message(response: httpx.Response) -> str:
    """The `message` of a `{"message": ...}` body (whole: `make` scrubs, then shortens it), or a
    description of what came instead."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # a body nested too deeply to parse is no message either
        return f"non-JSON body ({content_type}, {len(response.content)} bytes)"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return f"JSON body without a message ({content_type})"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_for_response(
    method: str, path: str, response: httpx.Response, secrets: Iterable[str] = ()
) -> ApiError | None:
    """Return the error a non-2xx response means, or None for success."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    secrets = tuple(secrets)

    def make(cls: type[ApiError], message: str, retry_after: float | None = None) -> ApiError:
        return cls(
            method=method,
            path=path,
            status=status,
            message=_short(message, secrets),
            retry_after=retry_after,
        )

    if 300 <= status < 400:
        # Redirects are never followed: an API call answered by a login page is not data.
        location = response.headers.get("location", "")
        target = urlsplit(location).path if location else "(no location)"
        return make(UnexpectedResponseError, f"redirect to {target} refused")
    message = _server_message(response)
    lowered = message.lower()
    if status == 429 or (status == 400 and RATE_LIMIT_TEXT in lowered):
        return make(RateLimitedError, message, _retry_after(response))
    if status in (401, 403):
        return make(AuthError, message)
    if status == 404 or (status == 400 and any(h in lowered for h in _NOT_FOUND_HINTS)):
        return make(NotFoundError, message)
    if status == 409 or (status == 400 and any(h in lowered for h in _CONFLICT_HINTS)):
        return make(ConflictError, message)
    if status >= 500:
        return make(TransientError, message, _retry_after(response))
    return make(BadRequestError, message)


def error_for_transport(
    method: str, path: str, exc: httpx.TransportError, secrets: Iterable[str] = ()
) -> ApiError:
    """Timeouts, refused or dropped connections and incomplete bodies are all worth retrying."""
    if isinstance(exc, httpx.TimeoutException):
        what = "timed out"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "connection dropped or response incomplete"
    elif isinstance(exc, httpx.ConnectError):
        what = "cannot connect"
    else:
        what = f"transport error ({type(exc).__name__})"
    return TransientError(method=method, path=path, status=None, message=scrub(what, secrets))


def too_deep_error(
    method: str, path: str, status: int | None, limit: int = MAX_JSON_DEPTH
) -> UnexpectedResponseError:
    """The error for a JSON body nested deeper than `limit` levels."""
    return UnexpectedResponseError(
        method=method,
        path=path,
        status=status,
        message=f"JSON nested deeper than {limit} levels; the answer cannot be trusted",
    )


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests objects and lists deeper than `limit` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_json_bounded(method: str, path: str, status: int | None, content: bytes) -> Any:
    """`json.loads`, with nesting deeper than `MAX_JSON_DEPTH` refused as untrustworthy.

    A ValueError (broken JSON) propagates for the caller to classify.
    """
    try:
        value = json.loads(content)
    except RecursionError:
        raise too_deep_error(method, path, status) from None
    if isinstance(value, dict | list) and json_too_deep(value):
        raise too_deep_error(method, path, status)
    return value


def decode_json(method: str, path: str, response: httpx.Response) -> Any:
    """Parse a 2xx body; None for 204 or an empty body; a broken body is a transient error."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return parse_json_bounded(method, path, response.status_code, response.content)
    except ValueError:
        content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
        raise TransientError(
            method=method,
            path=path,
            status=response.status_code,
            message=f"truncated or non-JSON body ({content_type}, {len(response.content)} bytes)",
        ) from None


def expect_shape(method: str, path: str, status: int, body: Any, shape: str) -> Any:
    """Check the envelope: `object` is a dict, `list` is {"data": [...]}; else it cannot be trusted."""
    if shape == "object" and isinstance(body, dict):
        return body
    if shape == "list" and isinstance(body, dict) and isinstance(body.get("data"), list):
        return body
    found = type(body).__name__ if not isinstance(body, dict) else "object without a data list"
    raise UnexpectedResponseError(
        method=method, path=path, status=status, message=f"expected {shape}, got {found}"
    )
