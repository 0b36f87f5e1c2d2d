"""The repository's token part, on SQLite and PostgreSQL: rows kept, names unique, uses throttled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tokens_harness import T0

from sigsci_iga.app import Role
from sigsci_iga.errors import InvalidInputError, RecordNotFoundError
from sigsci_iga.store import Repository

HASH = "ab" * 32


def add(repo: Repository, name: str = "ci", public_id: str = "AAAABBBBCCCC", **kw: object) -> None:
    values: dict[str, object] = {
        "role": "viewer",
        "public_id": public_id,
        "token_hash": HASH,
        "created_at": T0,
        "expires_at": T0 + timedelta(days=90),
    }
    values.update(kw)
    repo.tokens.add(name, **values)  # type: ignore[arg-type]


def test_a_token_is_listed_with_its_role_and_dates_but_never_its_identifier_or_hash(
    repo: Repository,
) -> None:
    add(repo, created_by="alice")

    [record] = repo.tokens.list()

    assert record.name == "ci"
    assert record.role is Role.VIEWER
    assert record.created_at == T0
    assert record.created_by == "alice"
    assert record.expires_at == T0 + timedelta(days=90)
    assert (record.last_used_at, record.revoked_at) == (None, None)
    shown = f"{record!r} {record.to_json()}"
    assert "AAAABBBBCCCC" not in shown
    assert HASH not in shown


def test_a_name_is_never_taken_twice_even_after_revocation(repo: Repository) -> None:
    add(repo)
    repo.tokens.revoke("ci", at=T0)

    with pytest.raises(InvalidInputError, match="already taken"):
        add(repo, public_id="DDDDEEEEFFFF")


def test_revoking_keeps_the_row_and_a_second_revocation_changes_nothing(repo: Repository) -> None:
    add(repo)

    first = repo.tokens.revoke("ci", at=T0 + timedelta(hours=1), by="alice")
    again = repo.tokens.revoke("ci", at=T0 + timedelta(hours=2), by="bob")

    assert first.revoked_at == again.revoked_at == T0 + timedelta(hours=1)
    assert again.revoked_by == "alice"
    assert [r.name for r in repo.tokens.list()] == ["ci"]
    assert repo.tokens.list()[0].state(T0 + timedelta(hours=3)) == "revoked"


def test_revoking_an_unknown_name_says_so(repo: Repository) -> None:
    with pytest.raises(RecordNotFoundError, match="'nope' does not exist"):
        repo.tokens.revoke("nope", at=T0)


def test_an_unknown_role_is_refused_before_anything_is_written(repo: Repository) -> None:
    with pytest.raises(InvalidInputError, match="role 'root'"):
        add(repo, role="root")
    assert repo.tokens.list() == []


def test_a_credential_is_found_by_its_identifier_and_hides_its_hash_when_shown(
    repo: Repository,
) -> None:
    add(repo)

    credential = repo.tokens.credential("AAAABBBBCCCC")

    assert credential is not None
    assert credential.token_hash == HASH
    assert credential.record.name == "ci"
    assert HASH not in repr(credential)
    assert repo.tokens.credential("ZZZZZZZZZZZZ") is None


def test_a_use_is_written_only_when_the_last_one_is_older_than_the_interval(
    repo: Repository,
) -> None:
    add(repo)
    credential = repo.tokens.credential("AAAABBBBCCCC")
    assert credential is not None
    minute = timedelta(minutes=1)

    wrote = [
        repo.tokens.mark_used(credential.id, at=T0 + offset, unless_since=T0 + offset - minute)
        for offset in (timedelta(0), timedelta(seconds=30), timedelta(seconds=61))
    ]

    assert wrote == [True, False, True]
    assert repo.tokens.get("ci").last_used_at == T0 + timedelta(seconds=61)
