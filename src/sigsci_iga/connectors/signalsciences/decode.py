"""The corp's users list decoded straight from its JSON bytes into small structs (msgspec).

Pydantic models stay for single users and request bodies; a list of 50,000 users with half a
million memberships is decoded here instead, at a fraction of the time and memory. The list is
read as it arrives (`UsersReader`): each item is delimited, decoded and handed on in batches, so
neither the body nor the whole list need be held, and a shape error names the item it is in.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import httpx
import msgspec

from sigsci_iga.connectors.http.responses import too_deep_error
from sigsci_iga.connectors.signalsciences.models import UserStatus, normalize_status
from sigsci_iga.domain.model import normalize_role
from sigsci_iga.errors import TransientError, UnexpectedResponseError

# Only what an import keeps is decoded: at 50,000 users every membership's display name, role
# (a copy of the corp role since 2019) and link would cost another 60 MB; unknown keys are skipped.


class SiteRefRow(msgspec.Struct, gc=False):
    name: str


class MembershipRow(msgspec.Struct, gc=False):
    """One site a user belongs to."""

    site: SiteRefRow


class MembershipsRow(msgspec.Struct, gc=False):
    data: list[MembershipRow] = msgspec.field(default_factory=list)


class UserRow(msgspec.Struct, rename="camel", gc=False):
    """A corp user from the list, with the attributes of `models.User` and its normalisation."""

    email: str
    role: str
    raw_email: str = ""
    name: str | None = ""
    #: Any JSON value: a string other than "active" (or none at all) is a pending invitee.
    status: Any = None
    raw_status: str = ""
    mfa_enabled: bool = False
    auth_status: str | None = None
    corp_auth_type: str | None = None
    created: datetime | None = None
    api_user: bool = False
    access_token_allowed: bool | None = None
    sso_provisioned: bool = False
    memberships: MembershipsRow = msgspec.field(default_factory=MembershipsRow)

    def __post_init__(self) -> None:
        # The same normalisation as `models.User`'s validators, in one pass.
        raw = self.email.strip()
        if not self.raw_email:
            self.raw_email = raw
        self.email = raw.lower()
        self.role = normalize_role(self.role)
        if self.name is None:
            self.name = ""
        status = self.status if isinstance(self.status, str) else None
        if not self.raw_status:
            self.raw_status = str(self.status or "")
        self.status = normalize_status(status)

    @property
    def site_names(self) -> list[str]:
        return sorted(m.site.name for m in self.memberships.data)

    @property
    def active(self) -> bool:
        return self.status is UserStatus.ACTIVE


#: Users decoded before they are handed on: small enough that a batch's rows are a few MB, large
#: enough that the per-batch work (a diff, a spool write) is not paid per user.
BATCH_USERS = 2_000
#: One user of the list: the largest corp user (thousands of memberships) is well under 1 MiB;
#: an element that grows past this without ending is refused rather than buffered on.
MAX_USER_BYTES = 8 * 1024 * 1024
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_SPACE = frozenset(b" \t\r\n")

UsersSink = Callable[[list[UserRow]], None]


@functools.cache
def _decoders() -> tuple[msgspec.json.Decoder[msgspec.Raw], msgspec.json.Decoder[UserRow]]:
    # Lax: "true" and 1 are booleans and epoch numbers are dates, as pydantic's lax mode reads them.
    return (
        msgspec.json.Decoder(msgspec.Raw),
        msgspec.json.Decoder(UserRow, strict=False),
    )


class _NeedMore(Exception):
    """The buffer ends inside the next token; wait for the next chunk."""


class UsersReader:
    """Decodes a users list as its bytes arrive, handing on batches of users as they complete.

    The body is never held whole: a small state machine walks the envelope (`{"data": [...]}`,
    other keys skipped), and each element of `data` is delimited by msgspec itself (its skip
    of one JSON value stops at the first character after it, whose offset the error names), then
    decoded as a `UserRow`. So strings, escapes and nesting are msgspec's to get right, a bracket
    inside a name cannot split a user, and what is buffered is at most one unfinished element
    (refused past `max_user_bytes`). Errors are those `decode_users` gives for a whole body.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        sink: UsersSink,
        *,
        content_type: str = "",
        batch_users: int = BATCH_USERS,
        max_user_bytes: int = MAX_USER_BYTES,
    ) -> None:
        self._method, self._path, self._status = method, path, status
        self._sink = sink
        self._content_type = content_type.split(";", maxsplit=1)[0] or "no type"
        self._batch_users = batch_users
        self._max_user_bytes = max_user_bytes
        self._buffer = bytearray()
        self._state = "start"
        self._key: str | None = None
        self._seen_data = False
        self._batch: list[UserRow] = []
        self._index = 0
        self._received = 0
        self._emails: dict[str, str | None] = {}
        #: The largest batch handed on (a guard for tests: batches stay bounded).
        self.largest_batch = 0

    @property
    def users(self) -> int:
        """Users handed on so far."""
        return self._index - len(self._batch)

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body; raises as soon as they show it is not a users list."""
        self._received += len(chunk)
        self._buffer += chunk
        try:
            consumed = self._walk(False)
        except RecursionError:
            raise too_deep_error(
                self._method, self._path, self._status, sys.getrecursionlimit()
            ) from None
        del self._buffer[:consumed]
        if len(self._buffer) > self._max_user_bytes:
            self._shape_error(
                f"data.{self._index}", f"one element longer than {self._max_user_bytes} bytes"
            )

    def end(self) -> None:
        """The body is complete: it must have been a whole users list."""
        try:
            consumed = self._walk(True)
        except RecursionError:
            raise too_deep_error(
                self._method, self._path, self._status, sys.getrecursionlimit()
            ) from None
        del self._buffer[:consumed]
        if self._state != "done" or self._buffer.strip():
            self._broken()
        self._flush()

    def _walk(self, final: bool) -> int:
        """Advance through the buffer; returns how many bytes are finished with."""
        view = memoryview(self._buffer)
        try:
            return self._steps(view, final)
        finally:
            view.release()

    def _steps(self, view: memoryview, final: bool) -> int:
        size = len(view)
        pos = 0
        buffer = self._buffer
        while True:
            while pos < size and buffer[pos] in _SPACE:
                pos += 1
            if pos == size:
                return pos
            try:
                pos = self._step(view, pos, buffer[pos], final)
            except _NeedMore:
                return pos

    def _step(self, view: memoryview, pos: int, char: int, final: bool) -> int:
        """One token of the envelope at `pos` (not white space); returns the offset after it."""
        state = self._state
        if state == "element":
            end = self._value_end(view, pos, final)
            self._user(view[pos:end])
            self._state = "after_element"
            return end
        if state in ("after_element", "after_value"):
            closer = 93 if state == "after_element" else 125  # ] or }
            if char == 44:  # ,
                self._state = "element" if state == "after_element" else "key"
            elif char == closer and state == "after_element":
                self._state = "after_value"
            elif char == closer:
                self._close_envelope()
            else:
                self._broken()
            return pos + 1
        if state == "array":
            if char != 93:
                self._state = "element"
                return pos
            self._state = "after_value"
            return pos + 1
        return self._envelope_step(view, pos, char, final)

    def _envelope_step(self, view: memoryview, pos: int, char: int, final: bool) -> int:
        """A token of the envelope outside `data`'s elements."""
        state = self._state
        if state == "start":
            if char != 123:  # {
                self._broken_or_shape(view, pos, final, "top")
            self._state = "key_or_end"
            return pos + 1
        if state == "key_or_end" and char == 125:  # }: an empty object
            self._close_envelope()
            return pos + 1
        if state in ("key_or_end", "key"):
            end = self._value_end(view, pos, final)
            try:
                self._key = msgspec.json.decode(view[pos:end], type=str)
            except msgspec.DecodeError:
                self._broken()
            self._state = "colon"
            return end
        if state == "colon":
            if char != 58:  # :
                self._broken()
            self._state = "value"
            return pos + 1
        if state == "value" and self._key == "data":
            self._seen_data = True
            if char != 91:  # [
                self._broken_or_shape(view, pos, final, "data")
            self._state = "array"
            return pos + 1
        if state == "value":
            end = self._value_end(view, pos, final)
            self._state = "after_value"
            return end
        # Done: only white space may follow the envelope.
        self._broken()

    def _value_end(self, view: memoryview, pos: int, final: bool) -> int:
        """Where the JSON value starting at `pos` ends (the offset just past it)."""
        skip, _ = _decoders()
        try:
            skip.decode(view[pos:])
        except msgspec.DecodeError as exc:
            found = _TRAILING.search(str(exc))
            if found is not None:
                # The offset is 1-based and names the first character after the value.
                return pos + int(found.group(1)) - 1
            if str(exc).startswith("Input data was truncated") and not final:
                raise _NeedMore from None
            self._broken()
        # The value runs to the end of what has arrived: it may go on in the next chunk.
        if not final:
            raise _NeedMore
        return len(view)

    def _user(self, raw: memoryview) -> None:
        _, decode = _decoders()
        try:
            user = decode.decode(raw)
        except msgspec.ValidationError as exc:
            where, reason = _where(exc, f"data.{self._index}")
            self._shape_error(where, reason)
        except msgspec.DecodeError:
            self._broken()
        spelled = user.raw_email or user.email
        if user.email in self._emails:
            earlier = self._emails[user.email] or user.email
            raise UnexpectedResponseError(
                method=self._method,
                path=self._path,
                status=self._status,
                message=f"users list names {user.email!r} twice ({earlier!r} and "
                f"{spelled!r}); the answer cannot be trusted",
            )
        # Two users with one email (in any letter case) cannot both be the account it keys; the
        # spelling is kept only where it differs (half a million emails are held for this).
        self._emails[user.email] = spelled if spelled != user.email else None
        self._index += 1
        self._batch.append(user)
        if len(self._batch) >= self._batch_users:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.largest_batch = max(self.largest_batch, len(batch))
            self._sink(batch)

    def _close_envelope(self) -> None:
        if not self._seen_data:
            self._shape_error("top", "Object missing required field `data`")
        self._state = "done"

    def _broken_or_shape(self, view: memoryview, pos: int, final: bool, where: str) -> NoReturn:
        """Not what a users list has at `where`: a wrong shape if it is JSON, else broken."""
        end = self._value_end(view, pos, final)
        try:
            value = msgspec.json.decode(view[pos:end])
        except msgspec.DecodeError:
            self._broken()
        kind = {dict: "object", list: "array", str: "str", bool: "bool"}.get(type(value), "value")
        expected = "object" if where == "top" else "array"
        self._shape_error(where, f"Expected `{expected}`, got `{kind}`")

    def _shape_error(self, where: str, reason: str) -> NoReturn:
        raise UnexpectedResponseError(
            method=self._method,
            path=self._path,
            status=self._status,
            message=f"users list invalid at {where}: {reason}",
        )

    def _broken(self) -> NoReturn:
        raise TransientError(
            method=self._method,
            path=self._path,
            status=self._status,
            message=f"truncated or non-JSON body ({self._content_type}, {self._received} bytes)",
        )


def _where(error: msgspec.ValidationError, prefix: str) -> tuple[str, str]:
    """msgspec's "Expected `str`, got `int` - at `$.data[3].email`" as ("data.3.email", reason)."""
    text = str(error)
    reason, _, at = text.partition(" - at `")
    path = at.rstrip("`").removeprefix("$")
    path = path.replace("[", ".").replace("]", "").lstrip(".")
    where = ".".join(p for p in (prefix, path) if p)
    return where or "top", reason


def decode_users(method: str, path: str, response: httpx.Response) -> list[UserRow]:
    """Every user of a users list held whole; a broken body is transient, a wrong shape untrusted."""
    users: list[UserRow] = []
    reader = UsersReader(
        method,
        path,
        response.status_code,
        users.extend,
        content_type=response.headers.get("content-type", ""),
    )
    reader.feed(response.content)
    reader.end()
    return users
