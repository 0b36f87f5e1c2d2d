"""The corp's users list decoded straight from its JSON bytes into small structs (msgspec).

Pydantic models stay for single users and request bodies; a list of 50,000 users with half a
million memberships is decoded here instead, at a fraction of the time and memory. The list is
split into its items first (each a slice of the response, not a copy) and the items decoded
one by one, so a shape error names the item it is in and nothing is decoded twice.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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


class _Envelope(msgspec.Struct, gc=False):
    data: list[msgspec.Raw]


@functools.cache
def _decoders() -> tuple[msgspec.json.Decoder[_Envelope], msgspec.json.Decoder[UserRow]]:
    # Lax: "true" and 1 are booleans and epoch numbers are dates, as pydantic's lax mode reads them.
    return (
        msgspec.json.Decoder(_Envelope, strict=False),
        msgspec.json.Decoder(UserRow, strict=False),
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
    """Every user of a users list; a broken body is transient, a wrong shape untrusted."""
    try:
        users = _decode(method, path, response)
    except RecursionError:
        # msgspec refuses nesting deeper than the interpreter's recursion limit this way, even
        # in a key nobody reads: an answer built to exhaust the stack, not a corp.
        raise too_deep_error(method, path, response.status_code, sys.getrecursionlimit()) from None
    _refuse_duplicate_emails(method, path, response.status_code, users)
    return users


def _refuse_duplicate_emails(method: str, path: str, status: int, users: Sequence[UserRow]) -> None:
    """Two users with one email (in any letter case) cannot both be the account it keys."""
    seen: dict[str, str] = {}
    for user in users:
        spelled = user.raw_email or user.email
        if user.email in seen:
            raise UnexpectedResponseError(
                method=method,
                path=path,
                status=status,
                message=f"users list names {user.email!r} twice ({seen[user.email]!r} and "
                f"{spelled!r}); the answer cannot be trusted",
            )
        seen[user.email] = spelled


def _decode(method: str, path: str, response: httpx.Response) -> list[UserRow]:
    envelope_decoder, user_decoder = _decoders()
    content = response.content
    try:
        items = envelope_decoder.decode(content).data
    except msgspec.ValidationError as exc:
        where, reason = _where(exc, "")
        raise UnexpectedResponseError(
            method=method,
            path=path,
            status=response.status_code,
            message=f"users list invalid at {where}: {reason}",
        ) from None
    except msgspec.DecodeError:
        content_type = response.headers.get("content-type", "").split(";")[0] or "no type"
        raise TransientError(
            method=method,
            path=path,
            status=response.status_code,
            message=f"truncated or non-JSON body ({content_type}, {len(content)} bytes)",
        ) from None
    users: list[UserRow] = []
    append = users.append
    decode = user_decoder.decode
    for index, item in enumerate(items):
        try:
            append(decode(item))
        except msgspec.ValidationError as exc:
            where, reason = _where(exc, f"data.{index}")
            raise UnexpectedResponseError(
                method=method,
                path=path,
                status=response.status_code,
                message=f"users list invalid at {where}: {reason}",
            ) from None
    return users
