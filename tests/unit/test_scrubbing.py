"""A secret a server echoes never survives into an error, in any spelling, truncated or not."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml
from pydantic import SecretStr

from sigsci_iga.connectors.http.responses import error_for_response, scrub
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.errors import ApiError, ConfigError

TOKEN = "Canary-Tok/3n+Secret=value 42"
PASSWORD = "pw:Canary/Pass+word"
USER = "owner@example.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def spellings(secret: str) -> dict[str, str]:
    """Every form a server might echo a secret in."""
    raw = secret.encode()
    basic = f"{USER}:{secret}".encode()
    return {
        "plain": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "quote": quote(secret, safe=""),
        "quote-default": quote(secret),
        "quote-lower-hex": quote(secret, safe="").lower(),
        "quote_plus": quote_plus(secret),
        "quote_plus-upper": quote_plus(secret).upper(),
        "base64": b64(raw),
        "base64-unpadded": b64(raw).rstrip("="),
        "base64-url": b64url(raw),
        "base64-url-unpadded": b64url(raw).rstrip("="),
        "base64-upper-secret": b64(secret.upper().encode()),
        "basic": "Basic " + b64(basic),
        "basic-unpadded": b64(basic).rstrip("="),
        "basic-url": b64url(basic),
        "basic-after-prefix": b64(b"x" + basic),
        "basic-two-prefix": b64(b"xy" + basic),
    }


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every piece of a secret long enough to matter if it leaked."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def leaked(text: str, secret: str) -> list[str]:
    """The forms or pieces of `secret` still readable in `text`."""
    lowered = text.lower()
    found = [piece for piece in fragments(secret) if piece.lower() in lowered]
    for name, form in spellings(secret).items():
        found += [f"{name}: {piece}" for piece in fragments(form, 8) if piece in text]
    return found


@pytest.mark.parametrize("form", sorted(spellings(TOKEN)))
@pytest.mark.parametrize("secret", [TOKEN, PASSWORD])
def test_every_spelling_of_a_secret_is_scrubbed(secret: str, form: str) -> None:
    shown = spellings(secret)[form]
    text = f"invalid credentials: {shown} (rejected)"

    scrubbed = scrub(text, [TOKEN, PASSWORD])

    assert leaked(scrubbed, secret) == []
    assert "***" in scrubbed
    assert scrubbed.startswith("invalid credentials: ")
    assert scrubbed.endswith("(rejected)")


def test_scrubbing_leaves_text_without_a_secret_alone() -> None:
    text = "user owner@example.com lacks the role; see /api/v0/corps/acme/users (ok=1)"
    assert scrub(text, [TOKEN, PASSWORD]) == text


def test_a_secret_in_a_run_of_other_base64_text_is_still_found() -> None:
    blob = b64(b"prefix bytes " + TOKEN.encode() + b" suffix bytes")
    assert leaked(scrub(f"echo {blob}", [TOKEN]), TOKEN) == []


def response(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message})


@pytest.mark.parametrize("offset", [180, 185, 190, 195, 198, 199, 200, 205])
@pytest.mark.parametrize("form", ["plain", "upper", "quote", "base64", "basic"])
def test_a_secret_cut_in_half_by_truncation_never_survives(offset: int, form: str) -> None:
    shown = spellings(TOKEN)[form]
    message = "x" * offset + " " + shown + " " + "y" * 300

    error = error_for_response("GET", "/p", response(400, message), secrets=[TOKEN])

    assert error is not None
    assert len(error.message) <= 200
    assert leaked(error.message, TOKEN) == []


def long_echo(secret: str) -> str:
    return "denied: " + "z" * 180 + secret + " and more text after it " * 5


def test_the_native_client_scrubs_before_it_shortens_a_servers_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return response(401, long_echo(request.headers["x-api-token"]))

    async def main() -> ApiError:
        async with SigSciClient(
            base_url="http://sim",
            corp="acme",
            email=USER,
            token=SecretStr(TOKEN),
            transport=httpx.MockTransport(handler),
        ) as client:
            with pytest.raises(ApiError) as info:
                await client.get_corp()
            return info.value

    error = asyncio.run(main())
    assert "***" in error.message
    assert leaked(str(error), TOKEN) == []


def rest_package(directory: Path, *, pending: list[str] | None = None) -> Path:
    document: dict[str, Any] = {
        "name": "echo",
        "version": "1",
        "parameters": {"token": {"secret": True, "env": "ECHO_TOKEN", "required": True}},
        "connection": {
            "base_url": "https://api.example.com/v1",
            "auth": {"key": {"type": "static_headers", "headers": {"x-key": "${params.token}"}}},
            "read_attempts": 1,
        },
        "import": {
            "site_entitlement_type": "Group",
            "accounts": {
                "calls": [{"url": "/users"}],
                "records_path": "items",
                "key_field": "id",
                "fields": {"email": {"path": "mail"}, "role": {"constant": "user"}},
                "status": {
                    "path": "state",
                    "active_values": ["on"],
                    **({"pending_values": pending} if pending is not None else {}),
                },
            },
            "entitlement_types": {
                "Group": {
                    "calls": [{"url": "/groups"}],
                    "records_path": "items",
                    "value_field": "n",
                }
            },
        },
    }
    path = directory / "echo.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "echo",
    [
        long_echo,
        lambda token: long_echo(token.upper()),
        lambda token: long_echo(b64(token.encode())),
        lambda token: long_echo(quote_plus(token)),
    ],
    ids=["plain", "upper", "base64", "quote_plus"],
)
def test_the_rest_connector_scrubs_before_it_shortens_a_servers_message(
    tmp_path: Path, echo: Callable[[str], str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=json.dumps({"message": echo(request.headers["x-key"])}))

    loaded = load_package(rest_package(tmp_path))
    bound = loaded.bind({}, env={"ECHO_TOKEN": TOKEN})

    async def main() -> ApiError:
        async with RestConnector(bound, transport=httpx.MockTransport(handler)) as connector:
            with pytest.raises(ApiError) as info:
                await connector.accounts_page(None)
            return info.value

    error = asyncio.run(main())
    assert leaked(str(error), TOKEN) == []


# -- messages built from server data outside responses.py (files owned elsewhere) -------------


def test_a_corp_name_echoing_the_token_is_scrubbed_from_the_check_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": request.headers["x-api-token"].upper()})

    async def main() -> ApiError:
        async with SigSciClient(
            base_url="http://sim",
            corp="acme",
            email=USER,
            token=SecretStr(TOKEN),
            transport=httpx.MockTransport(handler),
        ) as client:
            with pytest.raises(ApiError) as info:
                await SignalSciencesConnector(client).validate(USER)
            return info.value

    assert leaked(str(asyncio.run(main())), TOKEN) == []


def test_an_account_status_echoing_the_token_is_scrubbed_from_the_import_error(
    tmp_path: Path,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        record = {"id": "1", "mail": "a@x.example", "state": request.headers["x-key"]}
        return httpx.Response(200, json={"items": [record]})

    loaded = load_package(rest_package(tmp_path, pending=["invited"]))
    bound = loaded.bind({}, env={"ECHO_TOKEN": TOKEN})

    async def main() -> ApiError:
        async with RestConnector(bound, transport=httpx.MockTransport(handler)) as connector:
            with pytest.raises(ApiError) as info:
                await connector.accounts_page(None)
            return info.value

    assert leaked(str(asyncio.run(main())), TOKEN) == []


@pytest.mark.parametrize(
    "base_url",
    [
        "https://someone:{token}@api.example.com/v1",
        "https://api.example.com/v1?key={token}",
        "https://api.example.com/v1#{token}",
    ],
)
def test_a_refused_base_url_is_echoed_as_scheme_and_host_only(
    tmp_path: Path, base_url: str
) -> None:
    path = rest_package(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["parameters"]["base"] = {"env": "SIGSCI_PARAM_BASE", "required": True}
    document["connection"]["base_url"] = "${params.base}"
    path.write_text(yaml.safe_dump(document))
    loaded = load_package(path)
    with pytest.raises(ConfigError, match=r"connection\.base_url must be") as info:
        loaded.bind(
            {}, env={"ECHO_TOKEN": TOKEN, "SIGSCI_PARAM_BASE": base_url.format(token=TOKEN)}
        )
    assert leaked(str(info.value), TOKEN) == []
    # The canary holds `/` and a space, so the host read from the credentials case is `someone`.
    assert "(got https://" in str(info.value)
