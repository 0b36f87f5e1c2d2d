"""Values that make no sense are refused with one line and exit 2, before anything is written."""

from __future__ import annotations

import json

import pytest
from cli_inprocess import ImportedCorp, Outcome

from sigsci_iga.sim import DEMO_EMAIL

BEYOND_64_BITS = "99999999999999999999999"
MAX_ID = str(2**63 - 1)


def refused(outcome: Outcome, *, code: int = 2) -> str:
    """The one error line of a clean refusal."""
    assert outcome.crash is None, outcome.crash
    assert outcome.code == code, (outcome.code, outcome.stdout, outcome.stderr)
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert outcome.error_lines[0].startswith("error: "), outcome.stderr
    assert "Traceback" not in outcome.stdout + outcome.stderr
    return outcome.error_lines[0]


def refused_without_writing(corp: ImportedCorp, *args: str, **env: str) -> str:
    before = corp.state()
    line = refused(corp.run(*args, **env))
    assert corp.state() == before, f"{args} wrote to the repository"
    return line


NUMBERS = [
    (("provision", "run", "--max-wait"), ["nan", "inf", "-inf", "0", "-5", "1e308"], "--max-wait"),
    (("provision", "run", "--batch-size"), ["0", BEYOND_64_BITS, "10000001"], "--batch-size"),
    (("provision", "run", "--lease-seconds"), ["nan", "inf", "1e12"], "--lease-seconds"),
    (
        ("provision", "run", "--max-remove-account"),
        [BEYOND_64_BITS, "10000000000"],
        "--max-remove-account",
    ),
    (("provision", "run", "--max-per-operation"), [BEYOND_64_BITS], "--max-per-operation"),
    (("provision", "run", "--dry-run", "--max-wait"), ["nan", "0"], "--max-wait"),
    (("import", "--dry-run", "--max-suspend"), ["-2", BEYOND_64_BITS], "--max-suspend"),
    (
        ("import", "--dry-run", "--max-suspend-percent"),
        ["nan", "inf", "-2", "-0.5", "101"],
        "--max-suspend-percent",
    ),
    (
        ("import", "--dry-run", "--max-links-removed-percent"),
        ["nan", "-inf"],
        "--max-links-removed-percent",
    ),
    (
        ("import", "--dry-run", "--max-sites-inactivated"),
        ["-3"],
        "--max-sites-inactivated",
    ),
    (("journal", "list", "--limit"), ["0", BEYOND_64_BITS], "limit"),
    (("runs", "list", "--limit"), ["0", BEYOND_64_BITS], "limit"),
]


@pytest.mark.parametrize(
    ("args", "value", "named"),
    [(args, value, named) for args, values, named in NUMBERS for value in values],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_numbers_that_make_no_sense_are_refused_naming_the_option(
    imported_corp: ImportedCorp, args: tuple[str, ...], value: str, named: str
) -> None:
    line = refused_without_writing(imported_corp, *args, value)
    assert named in line


def test_minus_one_still_turns_a_threshold_off(imported_corp: ImportedCorp) -> None:
    outcome = imported_corp.run(
        "import", "--dry-run", "--full", "--max-suspend", "-1", "--max-suspend-percent", "-1"
    )
    assert outcome.crash is None
    assert outcome.code == 0, outcome.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("tasks", "show", BEYOND_64_BITS),
        ("tasks", "retry", BEYOND_64_BITS),
        ("tasks", "discontinue", BEYOND_64_BITS),
        ("tasks", "show", "0"),
        ("runs", "show", BEYOND_64_BITS),
        ("import", "approve", BEYOND_64_BITS),
        ("import", "refuse", BEYOND_64_BITS),
        ("journal", "list", "--task", BEYOND_64_BITS),
    ],
    ids=" ".join,
)
def test_ids_beyond_64_bits_are_refused_cleanly(
    imported_corp: ImportedCorp, args: tuple[str, ...]
) -> None:
    assert "id" in refused_without_writing(imported_corp, *args)


def test_the_largest_64_bit_id_is_simply_not_found(imported_corp: ImportedCorp) -> None:
    before = imported_corp.state()
    refused(imported_corp.run("tasks", "show", MAX_ID), code=4)
    assert imported_corp.state() == before


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("accounts", "list", "--status", "bogus"), "active, pending, suspended"),
        (("accounts", "list", "--status", "Active"), "did you mean 'active'?"),
        (("accounts", "list", "--role", "Admin"), "did you mean 'admin'?"),
        (("accounts", "list", "--role", "superuser"), "admin, observer, owner, user"),
        (("accounts", "list", "--site", "no-such-site"), "is not one of"),
        (("entitlements", "list", "--type", "site"), "did you mean 'Site'?"),
        (("entitlements", "list", "--status", "gone"), "active, inactive"),
        (("tasks", "list", "--status", "bogus"), "no_action_required"),
        (("tasks", "list", "--status", "New"), "did you mean 'new'?"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_an_unknown_filter_value_is_refused_with_the_known_ones(
    imported_corp: ImportedCorp, args: tuple[str, ...], hint: str
) -> None:
    assert hint in refused_without_writing(imported_corp, *args)


def test_a_site_filter_suggests_the_site_it_resembles(imported_corp: ImportedCorp) -> None:
    sites = imported_corp.run("entitlements", "list", "--type", "Site", "--json")
    name = json.loads(sites.stdout)[0]["value"]
    line = refused_without_writing(imported_corp, "accounts", "list", "--site", name.upper())
    assert f"did you mean {name!r}?" in line


@pytest.mark.parametrize(
    "email",
    [
        "",
        "a..b@example.com",
        "a/b@example.com",
        "evil\u202e@example.com",
        "zero\u200bwidth@example.com",
        "ctl\x1b[2J@example.com",
        "x" * 300 + "@example.com",
    ],
    ids=["empty", "dots", "slash", "bidi", "zero-width", "escape", "300-chars"],
)
def test_a_bad_email_in_a_request_is_refused_before_anything_is_stored(
    imported_corp: ImportedCorp, email: str
) -> None:
    refused_without_writing(
        imported_corp, "request", "update-role", "--email", email, "--role", "user"
    )


@pytest.mark.parametrize(
    "site",
    ["", "..", "a/b", "bidi\u202esite", "zero\u200bsite", "x" * 300, " padded"],
    ids=["empty", "dots", "slash", "bidi", "zero-width", "300-chars", "padded"],
)
def test_a_bad_site_in_a_request_is_refused_before_anything_is_stored(
    imported_corp: ImportedCorp, site: str
) -> None:
    refused_without_writing(
        imported_corp, "request", "add-access", "--email", DEMO_EMAIL, "--site", site
    )
