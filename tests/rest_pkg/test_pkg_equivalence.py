"""The shipped Signal Sciences package imports exactly what the native connector imports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pkg_harness import NO_THRESHOLDS, sim_connector
from pydantic import SecretStr

from sigsci_iga.connectors.base import Connector
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.errors import UnexpectedResponseError
from sigsci_iga.importer.run import Importer, ImportOptions, ImportResult
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    FaultKind,
    FaultRule,
    SimConfig,
    create_app,
)
from sigsci_iga.sim import inprocess_transport as sim_transport
from sigsci_iga.store import Repository, open_repository


def _import(repo: Repository, connector: Connector, mode: str = "full") -> ImportResult:
    options = ImportOptions(mode=mode, thresholds=NO_THRESHOLDS)  # type: ignore[arg-type]
    return asyncio.run(Importer(repo, DEMO_CORP, connector).run(options))


def _state(repo: Repository) -> dict[str, Any]:
    view = repo.runs.load_view(DEMO_CORP)
    accounts = {
        email: (
            a.name,
            a.role,
            str(a.status),
            a.mfa_enabled,
            a.created,
            dict(a.extra),
            sorted(a.sites),
            sorted(a.roles),
        )
        for email, a in view.accounts.items()
    }
    entitlements = [
        (e.type, e.value, e.display_name, e.status, e.holders)
        for e in repo.inventory.entitlements(DEMO_CORP)
    ]
    return {"accounts": accounts, "entitlements": entitlements}


@pytest.mark.parametrize(
    "server",
    [
        {},
        # A server that silently caps the sites limit loses no site through either connector.
        {"site_page_max_limit": 5},
        {"site_page_max_limit": 5, "sites_total_count": True, "sites_next_links": True},
    ],
    ids=["default", "capped", "capped with totalCount and next"],
)
def test_package_import_equals_native_import(tmp_path: Path, server: dict[str, Any]) -> None:
    app = create_app(SimConfig(users=60, sites=12, **server))
    native_repo = open_repository(f"sqlite:///{tmp_path / 'native.db'}")
    rest_repo = open_repository(f"sqlite:///{tmp_path / 'rest.db'}")
    try:
        native_repo.endpoints.add(DEMO_CORP, corp=DEMO_CORP, api_url="http://sim", email=DEMO_EMAIL)
        rest_repo.endpoints.add(
            DEMO_CORP,
            corp=DEMO_CORP,
            api_url="http://sim",
            email=DEMO_EMAIL,
            connector="rest",
            settings={"package": "src/sigsci_iga/packages_data/signalsciences.yaml"},
        )

        async def native() -> ImportResult:
            client = SigSciClient(
                base_url="http://sim",
                corp=DEMO_CORP,
                email=DEMO_EMAIL,
                token=SecretStr(DEMO_TOKEN),
                transport=sim_transport(app),
            )
            async with client:
                options = ImportOptions(mode="full", thresholds=NO_THRESHOLDS)
                return await Importer(native_repo, DEMO_CORP, SignalSciencesConnector(client)).run(
                    options
                )

        async def rest() -> tuple[ImportResult, ImportResult]:
            async with sim_connector(app) as connector:
                importer = Importer(rest_repo, DEMO_CORP, connector)
                first = await importer.run(ImportOptions(mode="full", thresholds=NO_THRESHOLDS))
                # The package has no activity feed: an incremental run falls back to a full one.
                second = await importer.run(ImportOptions(mode="auto", thresholds=NO_THRESHOLDS))
                return first, second

        native_result = asyncio.run(native())
        rest_result, again = asyncio.run(rest())
        assert native_result.run.status == rest_result.run.status == "succeeded"
        assert rest_result.accounts_read == 60
        assert rest_result.sites_read == 12

        native_state, rest_state = _state(native_repo), _state(rest_repo)
        assert len(native_state["accounts"]) == 60
        assert rest_state["accounts"] == native_state["accounts"]
        assert rest_state["entitlements"] == native_state["entitlements"]
        assert {t for t, *_ in rest_state["entitlements"]} == {"Site", "CorpRole"}

        assert again.mode == "full"
        assert again.fallback_reason is not None
        assert "activity feed" in again.fallback_reason
        assert again.diff.is_empty
    finally:
        native_repo.close()
        rest_repo.close()


def test_an_empty_users_glitch_through_the_package_fails_the_import_and_changes_nothing(
    tmp_path: Path,
) -> None:
    app = create_app(SimConfig(users=30, sites=5))
    repo = open_repository(f"sqlite:///{tmp_path / 'rest.db'}")
    try:
        repo.endpoints.add(
            DEMO_CORP, corp=DEMO_CORP, api_url="http://sim", email=DEMO_EMAIL, connector="rest"
        )
        _import(repo, sim_connector(app))
        before = _state(repo)
        app.state.sim.faults.add(FaultRule(kind=FaultKind.EMPTY_USERS))

        # The endpoint's caller must be listed: an empty list is a glitch, not "nobody".
        options = ImportOptions(mode="full", thresholds=NO_THRESHOLDS, required_account=DEMO_EMAIL)
        with pytest.raises(UnexpectedResponseError, match="empty"):
            asyncio.run(Importer(repo, DEMO_CORP, sim_connector(app)).run(options))

        assert _state(repo) == before
        assert repo.runs.list(DEMO_CORP)[0].status == "failed"
    finally:
        repo.close()
