"""Correlating accounts to identities with a configurable rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sigsci_iga.errors import ConfigError
from sigsci_iga.store import Repository

from .helpers import account, add_endpoint, corp, import_full


@pytest.fixture
def people(repo: Repository, tmp_path: Path) -> Repository:
    rows = [
        {"username": "alice", "email": "ALICE@example.com"},
        {"username": "bob", "email": "robert@corp.example"},
        {"username": "twin1", "email": "twin@example.com"},
        {"username": "twin2", "email": "Twin@example.com"},
    ]
    path = tmp_path / "hr.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    repo.identities.load(path)
    add_endpoint(repo)
    import_full(
        repo,
        corp(
            account("alice@example.com", "www"),
            account("bob@example.com", "www"),
            account("twin@example.com"),
        ),
    )
    return repo


def test_the_default_rule_matches_emails_case_insensitively(people: Repository) -> None:
    result = people.identities.correlate("prod")

    assert (result.rule, result.matched, result.changed) == ("email", 1, 1)
    assert result.ambiguous == ["twin@example.com"]
    assert people.inventory.account("prod", "alice@example.com").identity == "alice"
    assert [a.email for a in people.identities.unmatched("prod")] == [
        "bob@example.com",
        "twin@example.com",
    ]


def test_the_username_rule_matches_the_local_part_of_the_email(people: Repository) -> None:
    result = people.identities.correlate("prod", "username-localpart")

    assert result.matched == 2
    assert people.inventory.account("prod", "bob@example.com").identity == "bob"
    assert people.inventory.accounts("prod", correlated=True)[0].identity == "alice"


def test_recorrelating_with_another_rule_replaces_old_links(people: Repository) -> None:
    people.identities.correlate("prod", "username-localpart")

    result = people.identities.correlate("prod", "email")

    assert result.changed == 1
    assert people.inventory.account("prod", "bob@example.com").identity is None
    history = people.inventory.history(
        endpoint="prod", object_type="account", object_key="bob@example.com"
    )
    assert (history[0].field, history[0].old_value, history[0].new_value) == (
        "identity",
        "bob",
        None,
    )


def test_an_unknown_rule_is_a_configuration_error(people: Repository) -> None:
    with pytest.raises(ConfigError, match="username-localpart"):
        people.identities.correlate("prod", "shoe-size")
