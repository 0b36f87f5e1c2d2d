"""Snapshot builders shared by the repository tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sigsci_iga.domain import AccountSnapshot, CorpSnapshot, SiteSnapshot
from sigsci_iga.store import Repository, RunRecord

CREATED = datetime(2022, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def account(email: str, *sites: str, role: str = "user", **fields: object) -> AccountSnapshot:
    values: dict[str, object] = {
        "name": email.split("@", maxsplit=1)[0].title(),
        "created": CREATED,
    }
    values.update(fields)
    return AccountSnapshot(email=email, role=role, sites=frozenset(sites), **values)  # type: ignore[arg-type]


def corp(*accounts: AccountSnapshot, sites: tuple[str, ...] = ("www", "api")) -> CorpSnapshot:
    return CorpSnapshot(accounts, tuple(SiteSnapshot(s, s.upper()) for s in sites))


def add_endpoint(repo: Repository, name: str = "prod") -> None:
    repo.endpoints.add(
        name, corp=f"{name}-corp", api_url="https://dashboard.example", email="a@x.io"
    )


def import_full(repo: Repository, snapshot: CorpSnapshot, endpoint: str = "prod") -> RunRecord:
    """What the importer does for a full run that is not held."""
    from sigsci_iga.domain import compute_diff  # noqa: PLC0415  # keeps the helper's imports short

    run_id = repo.runs.start(endpoint, mode="full")
    view = repo.runs.load_view(endpoint)
    return repo.runs.apply(run_id, compute_diff(view, snapshot), base_version=view.version)
