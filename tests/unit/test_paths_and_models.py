"""Path safety and the tolerant payload models."""

from __future__ import annotations

import pytest

from sigsci_iga.connectors.http.segments import check_segment
from sigsci_iga.connectors.signalsciences.models import (
    Membership,
    SiteMember,
    User,
    UserStatus,
)
from sigsci_iga.connectors.signalsciences.paths import api_path
from sigsci_iga.domain.emails import normalize_email
from sigsci_iga.domain.model import CorpRole, corp_role, normalize_role
from sigsci_iga.errors import InvalidInputError


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "a/b",
        "..",
        "a..b",
        "x\x00y",
        "line\nbreak",
        "tab\there",
        "del\x7f",
        " lead",
        "back\\slash",
    ],
)
def test_dangerous_path_segments_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        check_segment(bad, "site name")


def test_path_segments_are_percent_encoded() -> None:
    path = api_path("corps", ("c", "corp"), "users", ("a+b c@example.com", "email"))
    assert path == "/api/v0/corps/c/users/a%2Bb%20c@example.com"


def test_emails_are_lower_cased_and_checked() -> None:
    assert normalize_email("Jane.Doe@Example.COM") == "jane.doe@example.com"
    for bad in ["no-at-sign", "@example.com", "a@b@c", "a/b@example.com"]:
        with pytest.raises(InvalidInputError):
            normalize_email(bad)


@pytest.mark.parametrize(
    ("legacy", "modern"),
    [
        ("corpOwner", "owner"),
        ("corpAdmin", "admin"),
        ("corpUser", "user"),
        ("corpObserver", "observer"),
        ("Observer", "observer"),
        ("none", "none"),
    ],
)
def test_legacy_role_names_read_as_modern_ones(legacy: str, modern: str) -> None:
    assert normalize_role(legacy) == modern


def test_a_requested_role_reads_legacy_names_and_refuses_anything_else() -> None:
    assert corp_role("corpAdmin") is CorpRole.ADMIN
    assert corp_role(" Observer ") is CorpRole.OBSERVER
    with pytest.raises(
        InvalidInputError, match="'none' is not one of owner, admin, user, observer"
    ):
        corp_role("none")


@pytest.mark.parametrize("status", ["invited", "pending", "Pending", "registered-not", None, ""])
def test_any_status_but_active_is_pending(status: str | None) -> None:
    user = User.model_validate({"email": "a@x.com", "role": "user", "status": status})
    assert user.status is UserStatus.PENDING
    assert user.raw_status == (status or "")


def test_user_model_ignores_unknown_fields_and_reads_real_payloads() -> None:
    user = User.model_validate(
        {
            "name": None,
            "email": "Jane.Doe@example.com",
            "role": "corpUser",
            "status": "active",
            "mfaEnabled": True,
            "created": "2022-01-10T18:30:40.62Z",
            "someNewField": {"x": 1},
            "memberships": {
                "data": [{"site": {"name": "www"}, "role": "corpUser"}, {"site": {"name": "api"}}],
                "uri": "/api/v0/corps/c/users/jane.doe@example.com/memberships",
            },
        }
    )
    assert user.email == "jane.doe@example.com"
    assert user.role == "user"
    assert user.name == ""
    assert user.status is UserStatus.ACTIVE
    assert user.site_names == ["api", "www"]
    assert user.created is not None
    assert user.created.microsecond == 620000


def test_offsets_in_timestamps_are_accepted() -> None:
    m = User.model_validate(
        {"email": "a@x.com", "role": "owner", "created": "2014-12-09T10:43:54-08:00"}
    )
    assert m.created is not None
    assert m.created.utcoffset() is not None


def test_flat_site_member_responses_are_read_too() -> None:
    flat = SiteMember.model_validate({"email": "A@x.com", "role": "user", "status": "invited"})
    nested = SiteMember.model_validate(
        {"user": {"email": "a@x.com", "status": "active"}, "role": "user"}
    )
    assert flat.user.email == nested.user.email == "a@x.com"
    assert flat.user.status is UserStatus.PENDING
    assert Membership.model_validate({"site": {"name": "s"}, "role": "corpAdmin"}).role == "admin"
