"""Query helpers the CLI renders."""

from __future__ import annotations

from typing import Any

from sigsci_iga.store import Repository

from .helpers import account, add_endpoint, corp, import_full


def test_accounts_can_be_filtered_by_site_role_and_status(repo: Repository) -> None:
    add_endpoint(repo)
    import_full(
        repo,
        corp(
            account("a@x.io", "www", role="admin"),
            account("b@x.io", "api"),
            account("c@x.io", "www", "api", status="pending"),
            account("d@x.io"),
        ),
    )
    import_full(
        repo,
        corp(
            account("a@x.io", "www", role="admin"),
            account("b@x.io", "api"),
            account("c@x.io", "www", "api", status="pending"),
        ),
    )

    def emails(**filters: Any) -> list[str]:
        return [a.email for a in repo.inventory.accounts("prod", **filters)]

    assert emails(site="www") == ["a@x.io", "c@x.io"]
    assert emails(role="user") == ["b@x.io", "c@x.io", "d@x.io"]
    assert emails(status="pending") == ["c@x.io"]
    assert emails(status="suspended") == ["d@x.io"]
    assert emails(site="api", role="user", status="active") == ["b@x.io"]
    assert repo.inventory.accounts("prod", site="www")[1].sites == ["api", "www"]


def test_entitlements_are_listed_with_type_value_display_name_and_status(
    repo: Repository,
) -> None:
    add_endpoint(repo)
    import_full(repo, corp(account("a@x.io", "www")))

    rows = [e.to_json() for e in repo.inventory.entitlements("prod", type="Site")]

    assert rows == [
        {
            "endpoint": "prod",
            "type": "Site",
            "value": "api",
            "display_name": "API",
            "status": "active",
            "holders": 0,
        },
        {
            "endpoint": "prod",
            "type": "Site",
            "value": "www",
            "display_name": "WWW",
            "status": "active",
            "holders": 1,
        },
    ]
