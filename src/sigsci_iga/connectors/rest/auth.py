"""Auth profiles at run time: static headers, Basic, token calls and session logins.

Token values are secrets: they are added to the connector's secret list (scrubbed from every
message) as soon as they are obtained, bound to templates as Secrets (taint.py), and never appear
in described calls or the journal. So is the text of any auth header computed from a secret.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sigsci_iga.connectors.rest.loader import BoundPackage, CompiledAuth, CompiledRequest
from sigsci_iga.connectors.rest.spec import (
    BasicAuth,
    SessionLoginAuth,
    StaticHeadersAuth,
    TokenCallAuth,
    get_path,
    parse_path,
)
from sigsci_iga.connectors.rest.taint import reveal, secret_texts
from sigsci_iga.connectors.rest.templates import Template
from sigsci_iga.errors import ConfigError, UnexpectedResponseError


@dataclass(frozen=True)
class Reply:
    """A successful call: status, parsed JSON body (None when empty), headers and final URL."""

    status: int
    body: Any
    headers: httpx.Headers
    url: str
    links: dict[str, dict[str, str]]


Login = Callable[[CompiledRequest], Awaitable[Reply]]


def _text(value: Any, what: str) -> str:
    value = reveal(value)
    text = "" if value is None else str(value)
    if "\r" in text or "\n" in text:
        raise ConfigError(f"{what} renders a line break")
    return text


class AuthState:
    """Credentials per profile; tokens are fetched on first use and again when refused."""

    def __init__(self, package: BoundPackage, login: Login, secrets: list[str]) -> None:
        self.package = package
        self._login = login
        self._secrets = secrets
        self._tokens: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._static: dict[str, dict[str, str]] = {}

    def _bindings(self) -> dict[str, Any]:
        return {
            "params": self.package.param_bindings,
            "connection": self.package.connection_binding,
        }

    def _render(self, template: Template, what: str) -> str:
        """A header or credential template as text; text computed from a secret is remembered."""
        value = template.render(self._bindings())
        for secret in secret_texts(value):
            self._remember(secret)
        return _text(value, what)

    def _compiled(self, name: str) -> CompiledAuth:
        return self.package.loaded.auth[name]

    async def headers(self, name: str) -> dict[str, str]:
        """The headers that authenticate a call with profile `name`."""
        profile = self.package.spec.connection.auth[name]
        if isinstance(profile, StaticHeadersAuth):
            if name not in self._static:
                compiled = self._compiled(name)
                self._static[name] = {
                    header: self._render(template, f"auth header {header}")
                    for header, template in compiled.headers
                }
            return dict(self._static[name])
        if isinstance(profile, BasicAuth):
            compiled = self._compiled(name)
            assert compiled.username is not None
            assert compiled.password is not None
            user = self._render(compiled.username, "basic username")
            password = self._render(compiled.password, "basic password")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._remember(token)
            return {"Authorization": f"Basic {token}"}
        value = await self.access_token(name)
        return {self._header_name(name): value} if value else {}

    def _header_name(self, name: str) -> str:
        profile = self.package.spec.connection.auth[name]
        return profile.header_name if isinstance(profile, TokenCallAuth) else "Authorization"

    async def access_token(self, name: str) -> str | None:
        """The full header value of a token profile (`Bearer abc`), fetching it if needed."""
        profile = self.package.spec.connection.auth[name]
        if not isinstance(profile, TokenCallAuth | SessionLoginAuth):
            return None
        if name not in self._tokens:
            await self.refresh(name, stale=None)
        return self._tokens.get(name)

    def should_refresh(self, name: str, status: int, message: str) -> bool:
        profile = self.package.spec.connection.auth[name]
        if isinstance(profile, TokenCallAuth):
            lowered = message.lower()
            return status in profile.refresh_on_statuses or any(
                m.lower() in lowered for m in profile.refresh_on_messages
            )
        if isinstance(profile, SessionLoginAuth):
            return status in profile.refresh_on_statuses
        return False

    def max_refresh(self, name: str) -> int:
        profile = self.package.spec.connection.auth[name]
        if isinstance(profile, TokenCallAuth | SessionLoginAuth):
            return profile.max_refresh_tries
        return 0

    async def refresh(self, name: str, *, stale: str | None) -> None:
        """Fetch a new token, unless another call already replaced the `stale` one."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self._tokens and self._tokens[name] != stale:
                return
            profile = self.package.spec.connection.auth[name]
            assert isinstance(profile, TokenCallAuth | SessionLoginAuth)
            compiled = self._compiled(name)
            assert compiled.request is not None
            reply = await self._login(compiled.request)
            if isinstance(profile, TokenCallAuth) and profile.token_header is not None:
                token = reply.headers.get(profile.token_header)
            else:
                token = get_path(reply.body, parse_path(profile.token_path or ""))
            if not isinstance(token, str) or not token:
                raise UnexpectedResponseError(
                    method=compiled.request.spec.method,
                    path=compiled.request.where,
                    status=reply.status,
                    message="the token call answered without a token",
                )
            self._remember(token)
            prefix = profile.prefix if isinstance(profile, TokenCallAuth) else "Bearer"
            value = f"{prefix} {token}" if prefix else token
            self._tokens[name] = _text(value, "token")

    def current(self, name: str) -> str | None:
        return self._tokens.get(name)

    def _remember(self, secret: str) -> None:
        if secret not in self._secrets:
            self._secrets.append(secret)
