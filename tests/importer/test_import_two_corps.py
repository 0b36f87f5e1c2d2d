"""Two corps governed side by side in one repository stay apart."""

from __future__ import annotations

from import_harness import SimCorp, assert_matches_sim, options

from sigsci_iga.sim import DEMO_EMAIL
from sigsci_iga.store import Repository


def test_two_corps_imported_into_one_repository_each_list_only_their_own_accounts(
    repo: Repository,
) -> None:
    alpha = SimCorp.create(corp="alpha", users=25, sites=5, seed=21)
    beta = SimCorp.create(corp="beta", users=18, sites=3, seed=22)
    alpha.register(repo)
    beta.register(repo)

    alpha.run(repo, opts=options(mode="full")).ok()
    beta.run(repo, opts=options(mode="full")).ok()
    beta.state.remove_user(next(u.email for u in beta.state.users.values() if u.role == "user"))
    beta.state.add_site("beta-only.example.com")
    alpha.run(repo, opts=options(mode="full")).ok()
    beta.run(repo, opts=options()).ok()

    assert_matches_sim(repo, "alpha", alpha)
    assert_matches_sim(repo, "beta", beta)
    alpha_emails = {a.email for a in repo.inventory.accounts("alpha")}
    beta_emails = {a.email for a in repo.inventory.accounts("beta")}
    assert alpha_emails == set(alpha.state.users)
    assert beta_emails == set(beta.state.users) | {
        a.email for a in repo.inventory.accounts("beta", status="suspended")
    }
    assert len(repo.inventory.accounts("beta", status="suspended")) == 1
    # The demo owner exists in both corps: one account per endpoint, each with its own sites.
    assert repo.inventory.account("alpha", DEMO_EMAIL).sites == sorted(alpha.state.sites)
    assert repo.inventory.account("beta", DEMO_EMAIL).sites == sorted(beta.state.sites)
    assert {e.value for e in repo.inventory.entitlements("alpha", type="Site")} == set(
        alpha.state.sites
    )
    assert "beta-only.example.com" not in {e.value for e in repo.inventory.entitlements("alpha")}
    assert {r.endpoint for r in repo.runs.list("beta")} == {"beta"}
    assert [r.mode for r in repo.runs.list("beta")] == ["incremental", "full"]
