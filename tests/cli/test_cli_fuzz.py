"""Hundreds of mistaken command lines through the real CLI: each ends cleanly and writes nothing.

Every case is a mistake a person makes (a filter that does not exist, a malformed email or site,
a number that means nothing, a URL with a password, a broken database URL or config file, a
missing setting, an unknown endpoint, an id beyond 64 bits). Each runs in-process through the
Typer app, against a repository holding an imported corp and, where the mistake can be seen
before a repository is needed, against a path where none exists yet. Each must:

* raise nothing (no traceback) and exit non-zero;
* print exactly one line on standard error, starting with `error:` (or, for what Typer itself
  refuses, its usage error), and nothing on standard output;
* leave the repository's bytes as they were, or leave it absent.

A small sample also runs as child processes, the way people run the command.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_inprocess import ImportedCorp, Outcome, fingerprint, invoke

from sigsci_iga.sim import OBSERVER_EMAIL

BEYOND_64_BITS = "99999999999999999999999"
SITE = "site-that-is-imported"  # replaced by a real site name of the imported corp


@dataclass(frozen=True)
class Case:
    category: str
    args: tuple[str, ...]
    #: Settings to change; None unsets the variable.
    env: Mapping[str, str | None] = field(default_factory=dict)
    #: Refused by Typer itself (unknown option, a value that is not a number).
    usage: bool = False
    #: Refused before a repository is needed: also run where none exists yet.
    fresh: bool = False

    @property
    def id(self) -> str:
        text = " ".join(self.args) + "".join(f" {k}={v!r}" for k, v in self.env.items())
        return f"{self.category}: {text}"[:150]


# -- the mistakes --------------------------------------------------------------------------


def filters() -> Iterator[Case]:
    for value in ("bogus", "ACTIVE", "Active", "", " active", "active\x1b[2J", "activ"):
        yield Case("filter", ("accounts", "list", "--status", value), fresh=True)
        yield Case("filter", ("tasks", "list", "--status", value), fresh=True)
        yield Case("filter", ("entitlements", "list", "--status", value), fresh=True)
    for value in ("Admin", "superuser", "", "owner ", "corpAdmin", "[red]x[/]"):
        yield Case("filter", ("accounts", "list", "--role", value))
    for value in ("site", "role", "", "Group", "Site\u200b"):
        yield Case("filter", ("entitlements", "list", "--type", value))
    for value in ("xml", "CSV", "", "json\n"):
        yield Case("filter", ("journal", "export", "--format", value), fresh=True)


BAD_EMAILS = (
    "",
    " ",
    "noatsign",
    "two@@x.example",
    "@x.example",
    "a@",
    ".a@x.example",
    "a.@x.example",
    "a..b@x.example",
    "a/b@x.example",
    "a\\b@x.example",
    "../../etc@x.example",
    "tab\t@x.example",
    "nl\n@x.example",
    "ctl\x01@x.example",
    "esc\x1b[31m@x.example",
    "bidi\u202e@x.example",
    "zero\u200bwidth@x.example",
    "bom\ufeff@x.example",
    "isolate\u2066@x.example",
    "x" * 300 + "@x.example",
)


def emails() -> Iterator[Case]:
    commands = (
        ("request", "update-role", "--role", "user", "--email"),
        ("request", "remove-account", "--email"),
        ("request", "add-access", "--site", SITE, "--email"),
        ("restore",),
        ("tasks", "list", "--email"),
        ("journal", "list", "--email"),
        ("endpoints", "add", "acme", "--corp", "acme", "--token-env", "ACME_TOKEN", "--email"),
    )
    for command, email in itertools.product(commands, BAD_EMAILS):
        yield Case("email", (*command, email), fresh=True)


BAD_SITES = (
    "",
    " ",
    "..",
    "a/b",
    "a\\b",
    "ctl\x01",
    "esc\x1b[2J",
    "bidi\u202e",
    "zero\u200bsite",
    "x" * 300,
    " padded",
    "padded ",
    "%2e%2e",
    "no-such-site",
)


def sites() -> Iterator[Case]:
    commands = (
        ("request", "add-access", "--email", OBSERVER_EMAIL, "--site"),
        ("request", "remove-access", "--email", OBSERVER_EMAIL, "--site"),
        ("request", "create-account", "--email", "new@x.example", "--role", "user", "--site"),
        ("accounts", "list", "--site"),
    )
    for command, site in itertools.product(commands, BAD_SITES):
        # Names that only the repository can tell apart from real ones need it.
        fresh = command[0] == "request" and site not in ("%2e%2e", "no-such-site")
        yield Case("site", (*command, site), fresh=fresh)


def numbers() -> Iterator[Case]:
    table: dict[tuple[str, ...], tuple[str, ...]] = {
        ("provision", "run", "--max-wait"): ("nan", "NaN", "inf", "-inf", "Infinity", "0",
                                             "-1", "1e309", "1e308"),
        ("provision", "run", "--dry-run", "--max-wait"): ("nan", "0", "-3"),
        ("provision", "run", "--batch-size"): ("0", "-1", BEYOND_64_BITS, "10001"),
        ("provision", "run", "--lease-seconds"): ("nan", "inf", "0", "-1", "0.5", "1e12"),
        ("provision", "run", "--max-remove-account"): ("-1", BEYOND_64_BITS, "1000001"),
        ("provision", "run", "--max-per-operation"): ("-5", BEYOND_64_BITS),
        ("import", "--dry-run", "--max-suspend"): ("-2", "-100", BEYOND_64_BITS),
        ("import", "--dry-run", "--max-suspend-percent"): ("nan", "inf", "-inf", "-2", "-0.5",
                                                          "100.5", "1e400"),
        ("import", "--dry-run", "--max-links-removed"): ("-2",),
        ("import", "--dry-run", "--max-links-removed-percent"): ("nan", "-3"),
        ("import", "--dry-run", "--max-sites-inactivated"): ("-7",),
        ("import", "--dry-run", "--max-sites-inactivated-percent"): ("inf", "101"),
        ("journal", "list", "--limit"): ("0", "-1", BEYOND_64_BITS),
        ("accounts", "list", "--limit"): ("0", "-1", BEYOND_64_BITS),
        ("accounts", "list", "--offset"): ("-1", BEYOND_64_BITS),
        ("accounts", "list", "--limit=5", "--offset"): ("-3",),
        ("runs", "list", "--limit"): ("0", "-3", BEYOND_64_BITS),
    }  # fmt: skip
    for (*command, option), values in table.items():
        for value in values:
            yield Case("number", (*command, f"{option}={value}"), fresh=True)
    for option, value in (("--batch-size", "nan"), ("--max-wait", "abc"), ("--limit", "1.5")):
        command = ("journal", "list") if option == "--limit" else ("provision", "run")
        yield Case("number", (*command, f"{option}={value}"), usage=True, fresh=True)


def ids() -> Iterator[Case]:
    commands = (
        ("tasks", "show"),
        ("tasks", "retry"),
        ("tasks", "discontinue"),
        ("runs", "show"),
        ("import", "approve"),
        ("import", "refuse"),
    )
    values = (BEYOND_64_BITS, str(2**63), "0", str(10**30))
    for command, value in itertools.product(commands, values):
        yield Case("id", (*command, value), fresh=True)
        yield Case("id", (*command, "--", "-1"), fresh=True)
    for value in (*values, "-1"):
        yield Case("id", ("journal", "list", f"--task={value}"), fresh=True)
    yield Case("id", ("tasks", "show", "abc"), usage=True, fresh=True)


BAD_URLS = (
    "http://iga:hunter2@127.0.0.1:9",
    "https://hunter2@dashboard.example",
    "https://:hunter2@dashboard.example",
    "ftp://dashboard.example",
    "dashboard.example",
    "http://",
    " ",
    "javascript:alert(1)",
    "http://[::1",
    "http://dashboard.example:99999",
)


def urls() -> Iterator[Case]:
    commands = (
        ("check",),
        ("import",),
        ("tasks", "list"),
        ("request", "remove-account", "--email", "x@x.example"),
    )
    for command, url in itertools.product(commands, (*BAD_URLS, "")):
        yield Case("url", command, env={"SIGSCI_API_URL": url}, fresh=True)
    for url in BAD_URLS:
        yield Case(
            "url",
            ("endpoints", "add", "acme", "--corp", "acme", "--email", "iga@acme.example",
             "--token-env", "ACME_TOKEN", "--api-url", url),
            fresh=True,
        )  # fmt: skip


def database_urls(scratch: Path) -> Iterator[Case]:
    directory = scratch / "a-directory"
    values = (
        "mysql://iga@127.0.0.1/iga",
        "oracle://iga@127.0.0.1/iga",
        f"sqlite:///{scratch}/missing/dir/iga.db",
        "garbage",
        "://",
        "postgresql://iga@127.0.0.1:1/iga",
        f"sqlite:///{directory}",
    )
    commands = (
        ("accounts", "list"),
        ("tasks", "list"),
        ("db", "upgrade"),
        ("import",),
        ("journal", "list"),
    )
    for command, url in itertools.product(commands, values):
        yield Case("database", command, env={"SIGSCI_IGA_DATABASE_URL": url})


def config_files(scratch: Path) -> Iterator[Case]:
    files = {
        "invalid-toml": (b'corp = "unterminated\n', {}),
        "unknown-key": (b'corpp = "typo"\n', {}),
        "wrong-type": (b'rate_limit_per_minute = "fast"\n', {}),
        "nan-rate": (b"rate_limit_per_minute = nan\n", {"SIGSCI_IGA_RATE_LIMIT": None}),
        "inf-timeout": (b"timeout_seconds = inf\n", {"SIGSCI_IGA_TIMEOUT": None}),
        "url-password": (b'api_url = "https://u:hunter2@x.example"\n', {"SIGSCI_API_URL": None}),
        "blank-token": (b'token = "  "\n', {"SIGSCI_TOKEN": None}),
        "not-utf8": (b'corp = "\xff\xfe"\n', {}),
    }
    for name, (content, env) in files.items():
        path = scratch / f"{name}.toml"
        path.write_bytes(content)
        yield from _with_config(name, path, env)
    directory = scratch / "config-directory.toml"
    directory.mkdir()
    yield from _with_config("directory", directory, {})
    fifo = scratch / "config-fifo.toml"
    os.mkfifo(fifo)
    yield from _with_config("fifo", fifo, {})
    yield from _with_config("missing", scratch / "missing.toml", {})


def _with_config(name: str, path: Path, env: Mapping[str, str | None]) -> Iterator[Case]:
    for command in (("accounts", "list"), ("import",)):
        yield Case(f"config {name}", ("--config", str(path), *command), env=env, fresh=True)
    yield Case(
        f"config {name}", ("tasks", "list"), env={**env, "SIGSCI_IGA_CONFIG": str(path)},
        fresh=True,
    )  # fmt: skip


def missing_settings() -> Iterator[Case]:
    needs_corp = (
        ("accounts", "list"),
        ("entitlements", "list"),
        ("import",),
        ("request", "update-role", "--email", OBSERVER_EMAIL, "--role", "user"),
        ("provision", "run"),
        ("restore", OBSERVER_EMAIL),
        ("check",),
    )
    for command in needs_corp:
        yield Case("missing setting", command, env={"SIGSCI_CORP": None}, fresh=True)
    needs_credentials = (
        ("check",),
        ("import",),
        ("request", "update-role", "--email", OBSERVER_EMAIL, "--role", "user"),
        ("provision", "run"),
    )
    for command, unset in itertools.product(needs_credentials, ("SIGSCI_EMAIL", "SIGSCI_TOKEN")):
        yield Case("missing setting", command, env={unset: None}, fresh=command == ("check",))
    for command, blank in itertools.product(needs_credentials, ("", " ", "\t")):
        yield Case("missing setting", command, env={"SIGSCI_TOKEN": blank}, fresh=True)
    yield Case(
        "missing setting",
        ("check",),
        env={"SIGSCI_TOKEN": None, "SIGSCI_PASSWORD": " "},
        fresh=True,
    )
    yield Case(
        "missing setting",
        ("import",),
        env={"SIGSCI_IGA_CORRELATION_RULE": "bogus"},
    )


def endpoints() -> Iterator[Case]:
    commands = (
        ("accounts", "list"),
        ("accounts", "show", OBSERVER_EMAIL),
        ("entitlements", "list"),
        ("import",),
        ("request", "update-role", "--email", OBSERVER_EMAIL, "--role", "user"),
        ("provision", "run"),
        ("provision", "run", "--dry-run"),
        ("tasks", "list"),
        ("journal", "list"),
        ("journal", "export", "--format", "json"),
        ("journal", "verify"),
        ("runs", "list"),
        ("check",),
        ("restore", OBSERVER_EMAIL),
    )
    for command, name in itertools.product(commands, ("nosuch", "", "evil\x1b[2J", "bidi\u202e")):
        yield Case("endpoint", (*command, "--endpoint", name))
    for name in ("nosuch", "", "x" * 300):
        yield Case("endpoint", ("endpoints", "remove", name))


def packages(scratch: Path) -> Iterator[Case]:
    files = {
        "bad.yaml": b"name: [unclosed\n",
        "bad.json": b'{"name": \n',
        "binary.yaml": bytes(range(128, 256)) * 8,
        "binary.json": b'{"name": "\xff\xfe"}',
    }
    for name, content in files.items():
        path = scratch / name
        path.write_bytes(content)
        for command in (
            ("packages", "validate", str(path)),
            ("packages", "render", str(path), "--operation", "remove-account", "--account",
             "a@x.example"),
            ("packages", "import-saviynt", str(path)),
            ("endpoints", "add-rest", "pkg", "--package", str(path), "--corp", "acme"),
        ):  # fmt: skip
            yield Case("package", command, fresh=True)
    shipped = (
        Path(__file__).resolve().parents[2] / "src/sigsci_iga/packages_data/signalsciences.yaml"
    )
    for args in (
        ("--operation", "teleport"),
        ("--operation", "remove-account", "--account", "a@x.example", "--param", "noequals"),
        ("--operation", "remove-account", "--account", " "),
    ):
        yield Case(
            "package",
            ("packages", "render", str(shipped), *args) if "--account" in args
            else ("packages", "render", str(shipped), "--account", "a@x.example", *args),
            fresh=True,
        )  # fmt: skip


def shipped_packages(scratch: Path) -> Iterator[Case]:
    for name in (
        "",
        " ",
        "nosuch",
        "signalscience",
        "saviynt/",
        "../signalsciences",
        "/etc/passwd",
        "signalsciences.yaml",
        "esc\x1b[2J",
        "bidi\u202e",
    ):
        yield Case("package", ("packages", "show", name), fresh=True)
    directory = scratch / "a-directory"
    yield Case("package", ("packages", "show", "signalsciences", "-o", str(directory)), fresh=True)


def usage() -> Iterator[Case]:
    for args in (
        ("accounts", "list", "--bogus"),
        ("tasks", "list", "--status"),
        ("request", "create-account", "--role", "user"),
        ("request", "teleport", "--email", "x@x.example"),
        ("provision", "run", "--until-done=maybe"),
        ("journal", "export", "--format"),
        ("nosuchcommand",),
    ):
        yield Case("usage", args, usage=True, fresh=True)


def all_cases(scratch: Path, site: str) -> list[Case]:
    cases = [
        *filters(),
        *emails(),
        *sites(),
        *numbers(),
        *ids(),
        *urls(),
        *database_urls(scratch),
        *config_files(scratch),
        *missing_settings(),
        *endpoints(),
        *packages(scratch),
        *shipped_packages(scratch),
        *usage(),
    ]
    return [
        Case(c.category, tuple(a.replace(SITE, site) for a in c.args), c.env, c.usage, c.fresh)
        for c in cases
    ]


# -- running them ---------------------------------------------------------------------------


def settings_for(base: Mapping[str, str], case: Case, **more: str) -> dict[str, str]:
    env = {**base, "ACME_TOKEN": "tok-acme-0123", **more}
    for name, value in case.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def problems_with(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with how the command ended; empty when it ended as it should."""
    found = []
    if outcome.crash is not None:
        found.append(f"crashed: {outcome.crash}")
    if outcome.code == 0:
        found.append("exited 0")
    if "Traceback" in outcome.stdout + outcome.stderr:
        found.append("printed a traceback")
    if outcome.stdout:
        found.append(f"printed on stdout: {outcome.stdout[:200]!r}")
    lines = outcome.stderr.splitlines()
    if case.usage:
        # Typer's plain usage error: one `Error: ...` line, after the usage when it helps.
        if not any(each.startswith("Error: ") for each in lines):
            found.append(f"no usage error: {outcome.stderr[:300]!r}")
    elif (
        not lines
        or not lines[0].startswith("error: ")
        or any(not each.startswith("  ") for each in lines[1:])
    ):
        # One `error:` line; an error listing problems (a package's) indents each under it.
        found.append(f"stderr is not one error line: {outcome.stderr[:400]!r}")
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "a-directory").mkdir()
    return path


@pytest.fixture(scope="module")
def site(imported_corp: ImportedCorp) -> str:
    import json  # noqa: PLC0415  (only this fixture reads JSON)

    listed = imported_corp.run("entitlements", "list", "--type", "Site", "--json")
    name: str = json.loads(listed.stdout)[0]["value"]
    return name


@pytest.fixture(scope="module")
def cases(scratch: Path, site: str) -> list[Case]:
    return all_cases(scratch, site)


def test_the_table_holds_at_least_300_mistakes(cases: list[Case]) -> None:
    assert len(cases) >= 300
    assert len({c.category.split()[0] for c in cases}) >= 10


def test_every_mistake_ends_in_one_clear_line_and_writes_nothing(
    imported_corp: ImportedCorp, scratch: Path, cases: list[Case]
) -> None:
    fresh_db = scratch / "fresh" / "iga.db"
    fresh_db.parent.mkdir()
    missing_dir = scratch / "missing"
    failures: list[str] = []
    runs = 0
    for case in cases:
        before = imported_corp.state()
        outcome = invoke(
            *case.args,
            env=settings_for(imported_corp.env, case),
            cwd=imported_corp.directory,
        )
        runs += 1
        found = problems_with(case, outcome)
        if imported_corp.state() != before:
            found.append("changed the repository")
        if missing_dir.exists():
            found.append("created a missing directory")
        if case.fresh:
            fresh_env = settings_for(
                imported_corp.env, case, SIGSCI_IGA_DATABASE_URL=f"sqlite:///{fresh_db}"
            )
            if "SIGSCI_IGA_DATABASE_URL" in case.env:
                fresh_env["SIGSCI_IGA_DATABASE_URL"] = str(case.env["SIGSCI_IGA_DATABASE_URL"])
            fresh = invoke(*case.args, env=fresh_env, cwd=imported_corp.directory)
            runs += 1
            found += [f"(no repository yet) {p}" for p in problems_with(case, fresh)]
            if fingerprint(fresh_db) is not None:
                found.append("(no repository yet) created the repository")
                for leftover in fresh_db.parent.iterdir():
                    leftover.unlink()
        failures += [f"{case.id}: {problem}" for problem in found]
    assert runs >= 300
    assert failures == [], f"{len(failures)} problems:\n" + "\n".join(failures)


SAMPLE = (
    Case("filter", ("accounts", "list", "--status", "bogus")),
    Case("email", ("request", "update-role", "--role", "user", "--email", "bidi\u202e@x.example")),
    Case("number", ("provision", "run", "--max-wait=nan")),
    Case("id", ("tasks", "show", BEYOND_64_BITS)),
    Case("url", ("check",), env={"SIGSCI_API_URL": "http://iga:hunter2@127.0.0.1:9"}),
    Case("database", ("accounts", "list"), env={"SIGSCI_IGA_DATABASE_URL": "mysql://x@h/db"}),
    Case("endpoint", ("journal", "list", "--endpoint", "nosuch")),
    Case("missing setting", ("import",), env={"SIGSCI_TOKEN": " "}),
    Case("usage", ("accounts", "list", "--bogus"), usage=True),
)


@pytest.mark.parametrize("case", SAMPLE, ids=lambda c: c.id)
def test_a_sample_of_mistakes_ends_cleanly_as_a_child_process(
    imported_corp: ImportedCorp, case: Case
) -> None:
    child = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    child.update(settings_for(imported_corp.env, case))
    child.update({"COLUMNS": "250", "NO_COLOR": "1"})
    before = imported_corp.state()
    done = subprocess.run(  # noqa: S603  # our own module, fixed arguments
        [sys.executable, "-m", "sigsci_iga", *case.args],
        env=child,
        cwd=imported_corp.directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outcome = Outcome(done.returncode, done.stdout, done.stderr, None)
    assert problems_with(case, outcome) == []
    assert "hunter2" not in done.stdout + done.stderr
    assert imported_corp.state() == before


#: Packages with several problems: the refusal lists each, indented under the `error:` line.
MULTI_LINE_PACKAGE_ERRORS = {
    "unknown-key.yaml": b"name: x\nversion: '1'\nbogus: 2\n",
    "a-list.yaml": b"- a\n- b\n",
    "empty.yaml": b"",
}


@pytest.mark.parametrize("name", sorted(MULTI_LINE_PACKAGE_ERRORS))
def test_a_package_with_schema_problems_is_refused_with_one_error_line_and_indented_problems(
    imported_corp: ImportedCorp, scratch: Path, name: str
) -> None:
    path = scratch / name
    path.write_bytes(MULTI_LINE_PACKAGE_ERRORS[name])
    case = Case("package", ("packages", "validate", str(path)))
    outcome = invoke(*case.args, env=dict(imported_corp.env), cwd=imported_corp.directory)
    assert outcome.code == 2
    assert problems_with(case, outcome) == []
