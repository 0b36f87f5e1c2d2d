"""Identities from the identity source, and correlating accounts to them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sigsci_iga.app.context import AppContext
from sigsci_iga.errors import RecordNotFoundError
from sigsci_iga.files import check_regular_file
from sigsci_iga.store import AccountRecord, CorrelationResult, IdentityLoadResult
from sigsci_iga.store.identities import correlation_rule


@dataclass(frozen=True)
class IdentityLoad:
    """What loading a file did, and (when an endpoint was correlated) what correlation found."""

    loaded: IdentityLoadResult
    endpoint: str | None = None
    correlation: CorrelationResult | None = None
    unmatched: tuple[AccountRecord, ...] = ()


def load_identities(
    ctx: AppContext, file: Path, *, endpoint: str | None = None, rule: str | None = None
) -> IdentityLoad:
    """Load or update identities (all or nothing), then correlate the endpoint's accounts.

    The endpoint is the one named, else the configured corp when it is registered. The rule is
    checked before anything is written.
    """
    chosen = rule or ctx.settings.correlation_rule
    correlation_rule(chosen)
    # Before the repository is opened (and, on a first run, created): a mistake writes nothing.
    check_regular_file(file, "identity file")
    repo = ctx.repository
    name = endpoint or ctx.settings.corp
    if endpoint is not None:
        repo.endpoints.get(endpoint)
    loaded = repo.identities.load(file)
    if name is None:
        return IdentityLoad(loaded)
    try:
        result = repo.identities.correlate(name, chosen)
    except RecordNotFoundError:
        return IdentityLoad(loaded)
    return IdentityLoad(loaded, name, result, tuple(repo.identities.unmatched(name)))
