"""The one rule for names inside URL paths, and the check of the path actually sent."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from sigsci_iga.connectors.http.segments import check_segment, check_sent_path, encode_segment
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import InvalidInputError

UNADDRESSABLE = [
    ".",
    "..",
    "a..b",
    "",
    " ",
    "a/b",
    "a\\b",
    "%2e",
    "%2E",
    "%2e%2e",
    "a%2Fb",
    "a%5cb",
    "tab\there",
    "nul\x00",
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "isolate\u2066",
    "%e2%80%ae",
    " padded",
    "s" * 255,
]


@pytest.mark.parametrize("value", UNADDRESSABLE)
def test_a_segment_that_could_name_another_resource_is_refused(value: str) -> None:
    with pytest.raises(InvalidInputError, match="site name"):
        check_segment(value, "site name")


@pytest.mark.parametrize("value", ["www", "a.b", "user@example.com", "s" * 254, "ünïcode", "a%b"])
def test_an_ordinary_segment_passes_unchanged(value: str) -> None:
    assert check_segment(value, "site name") == value


def test_a_path_that_the_http_library_would_resolve_differently_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="path sent would be"):
        check_sent_path(
            httpx.URL("http://h/api/v0/sites/./members/a@b"), "/api/v0/sites/./members/a@b"
        )
    check_sent_path(httpx.URL("http://h/api/v0/sites/www"), "/api/v0/sites/www")


def test_an_encoded_segment_never_decodes_to_a_path_step() -> None:
    assert encode_segment("a b@x", "email") == "a%20b@x"


@pytest.mark.parametrize("site", [".", "%2e", "..", "x\u202ey"])
def test_the_native_client_refuses_a_member_path_for_a_dot_site(site: str) -> None:
    client = SigSciClient(
        base_url="http://127.0.0.1:9", corp="acme", email="a@example.com", token=SecretStr("t0ken")
    )
    with pytest.raises(InvalidInputError):
        client.site_member_path(site, "a@example.com")
