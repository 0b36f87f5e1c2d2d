"""Loading identities from CSV and JSON, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import Repository
from sigsci_iga.store.identities import read_identities

CSV = """username,email,first_name,last_name,department,manager,status,cost_center
alice,Alice@Example.com,Alice,Archer,Security,carol,active,CC-1
bob,bob@example.com,Bob,,Ops,,,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_file_loads_standard_and_extra_columns(repo: Repository, tmp_path: Path) -> None:
    result = repo.identities.load(write(tmp_path, "hr.csv", CSV))

    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    alice, bob = repo.identities.list()
    assert alice.to_json() == {
        "username": "alice",
        "email": "Alice@Example.com",
        "first_name": "Alice",
        "last_name": "Archer",
        "department": "Security",
        "manager": "carol",
        "status": "active",
        "extra": {"cost_center": "CC-1"},
    }
    assert (bob.last_name, bob.manager, bob.status, bob.extra) == (None, None, "active", {})


def test_a_json_file_loads_and_reloading_upserts_by_username(
    repo: Repository, tmp_path: Path
) -> None:
    people: list[dict[str, Any]] = [
        {"username": "alice", "email": "alice@example.com", "badge": 7},
        {"username": "bob", "email": "bob@example.com"},
    ]
    repo.identities.load(write(tmp_path, "hr.json", json.dumps(people)))
    people[0]["department"] = "Security"

    result = repo.identities.load(write(tmp_path, "hr2.json", json.dumps(people)))

    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    assert repo.identities.list()[0].department == "Security"
    assert repo.identities.list()[0].extra == {"badge": 7}
    changes = repo.inventory.history(object_type="identity", object_key="alice")
    assert next((h.field, h.old_value, h.new_value) for h in changes) == (
        "department",
        None,
        "Security",
    )


def test_a_bad_csv_row_names_the_file_row_and_field_and_writes_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    path = write(tmp_path, "hr.csv", CSV + "dave,not-an-email,Dave,,,,,\n")

    with pytest.raises(InvalidInputError) as caught:
        repo.identities.load(path)

    assert f"{path}: row 4: field 'email': 'not-an-email' is not an email address" in str(
        caught.value
    )
    assert repo.identities.list() == []


def test_a_bad_json_item_names_its_index_and_writes_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    people = [{"username": "alice", "email": "alice@example.com"}, {"email": "x@example.com"}]
    path = write(tmp_path, "hr.json", json.dumps(people))

    with pytest.raises(InvalidInputError, match=r"index 1: field 'username': is required"):
        repo.identities.load(path)

    assert repo.identities.list() == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("hr.json", '{"username": "a"}', "top level: field '*': must be a list of objects"),
        ("hr.json", "[1]", "index 0: field '*': must be an object"),
        ("hr.json", '[{"username": 5, "email": "a@b.io"}]', "must be a string, not int"),
        ("hr.json", "[", "is not valid JSON"),
        ("hr.csv", "username,name\na,b\n", "header: field 'email': column is missing"),
        ("hr.csv", "username,email\na,a@b.io,extra\n", "row 2: field '*': has more values"),
        ("hr.csv", "username,email\na,a@b.io\na,a@b.io\n", "row 3: field 'username': 'a' already"),
        ("hr.txt", "", "must be .csv or .json"),
    ],
)
def test_malformed_identity_files_are_refused_with_a_precise_message(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("*", r"\*")):
        read_identities(write(tmp_path, name, text))
