"""Query helpers the CLI renders."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from sigsci_iga.store import Repository
from sigsci_iga.store.inventory import _json_value

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


def _import_listing_corp(repo: Repository) -> None:
    """Seven accounts: sites, none, a site gone from the corp, odd text, dates with and without
    microseconds or none, nested extra fields."""
    add_endpoint(repo)
    whole = datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)
    accounts = (
        account("a@x.io", "www", "api", "old", role="admin", extra={"z": 1, "a": [1, {"b": None}]}),
        account("b@x.io", "api", created=whole, mfa_enabled=True),
        account("c@x.io", "www", status="pending", name='Zoë \u202e "quoted" \\ back'),
        account("d@x.io"),
        account("e@x.io", "old", created=None),
        account("f@x.io", "www", "api", role="observer", extra={"unicode": "åß\u2028"}),
        account("g@x.io", "api"),
    )
    import_full(repo, corp(*accounts, sites=("www", "api", "old")))
    # `old` leaves the corp: its value turns inactive and is no longer listed as held; `g`
    # leaves too and is listed as suspended.
    import_full(repo, corp(*accounts[:-1], sites=("www", "api")))


@pytest.mark.parametrize(
    "filters",
    [{}, {"site": "www"}, {"role": "user"}, {"status": "suspended"}, {"status": "active"}],
    ids=repr,
)
def test_the_json_listing_holds_what_the_records_say(
    repo: Repository, filters: dict[str, str]
) -> None:
    _import_listing_corp(repo)
    expected = [r.to_json() for r in repo.inventory.accounts("prod", **filters)]
    assert expected, "the filter should match some accounts"
    for first_page, page_size in ((1, 2), (100, 5000), (3, 3)):
        pages = list(
            repo.inventory.iter_account_json(
                "prod", **filters, first_page=first_page, page_size=page_size
            )
        )
        assert all(pages), "no empty page is yielded"
        assert [item for page in pages for item in page] == expected
        # Keys in the records' order too: the listing prints them as they come.
        assert [list(item) for page in pages for item in page] == [list(e) for e in expected]


def test_the_json_listing_takes_one_statement_a_page(repo: Repository) -> None:
    _import_listing_corp(repo)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(repo.engine, "before_cursor_execute", count)
    try:
        pages = list(repo.inventory.iter_account_json("prod", first_page=1, page_size=2))
    finally:
        sa.event.remove(repo.engine, "before_cursor_execute", count)
    # 7 accounts: 1, then 2, 2, 2 (full, so one more page is asked for, and comes back empty).
    assert [len(p) for p in pages] == [1, 2, 2, 2]
    paged = [s for s in statements if "page" in s and "accounts" in s]
    assert len(paged) == 5
    # The rest is per listing, not per page: the endpoint's id, its active sites, and on
    # PostgreSQL `jit = off`.
    assert len(statements) - len(paged) <= 3, statements


def test_the_json_listing_of_an_empty_endpoint_yields_no_page(repo: Repository) -> None:
    add_endpoint(repo)
    assert list(repo.inventory.iter_account_json("prod")) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"a": NaN, "b": Infinity}',
        '{"a": 1e400}',
        '["\\ud800"]',
        '{"big": 123456789012345678901234567890}',
    ],
)
def test_stored_json_the_fast_decoder_refuses_is_decoded_as_json_decodes_it(text: str) -> None:
    # SQLite's JSON column holds what `json.dumps` wrote, NaN and lone surrogates included.
    assert json.dumps(_json_value(text)) == json.dumps(json.loads(text))
