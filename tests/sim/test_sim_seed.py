"""Deterministic, realistic and fast corp generation."""

from __future__ import annotations

import re
from collections import Counter

from sigsci_iga.sim import DEMO_EMAIL, OBSERVER_EMAIL, SimConfig, SimState
from sigsci_iga.sim.seed import generate


def test_the_same_seed_gives_the_same_corp_byte_for_byte() -> None:
    config = SimConfig(users=300, sites=30, seed=11)
    first, second = SimState(config), SimState(SimConfig(users=300, sites=30, seed=11))
    assert first.users_list_bytes(expand=True) == second.users_list_bytes(expand=True)
    assert list(first.sites) == list(second.sites)


def test_a_different_seed_gives_a_different_corp() -> None:
    first = SimState(SimConfig(users=100, sites=10, seed=1))
    second = SimState(SimConfig(users=100, sites=10, seed=2))
    assert first.users_list_bytes(expand=True) != second.users_list_bytes(expand=True)


def test_generated_users_and_sites_look_real() -> None:
    config = SimConfig(users=2000, sites=40, seed=5, memberships_per_user=4)
    data = generate(config)
    emails = list(data.users)
    assert len(emails) == len(set(emails)) == 2000
    assert emails[:2] == [DEMO_EMAIL, OBSERVER_EMAIL]
    assert all(e == e.lower() and e.count("@") == 1 for e in emails)
    assert all(re.fullmatch(r"[0-9a-z_.-]+", name) for name in data.sites)
    roles = Counter(u.role for u in data.users.values())
    assert roles["owner"] == 3
    assert roles["user"] > roles["observer"] > roles["admin"] > roles["owner"]
    pending = [u for u in data.users.values() if u.status != "active"]
    assert 40 < len(pending) < 170
    assert all(u.status == "pending" and u.name == "" for u in pending)
    assert any(u.mfa_enabled for u in data.users.values())
    assert all(not u.sites for u in data.users.values() if u.role == "owner")
    non_owners = [u for u in data.users.values() if u.role != "owner"]
    average = sum(len(u.sites) for u in non_owners) / len(non_owners)
    assert 3.6 < average < 4.4
    for user in non_owners:
        assert user.sites
        assert all(user.email in data.sites[s].members for s in user.sites)


def test_a_large_corp_seeds_with_the_requested_counts() -> None:
    state = SimState(SimConfig(users=50_000, sites=1_000, memberships_per_user=10, seed=1))
    assert len(state.users) == 50_000
    assert len(state.sites) == 1_000
    assert 490_000 < state.membership_count() < 510_000
    assert sum(len(u.sites) for u in state.users.values()) == state.membership_count()
    assert len(state.owners()) == 3
