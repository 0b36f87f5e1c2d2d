"""`sigsci-iga tokens` in a subprocess on a SQLite file: the token is shown once, and only once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from tokens_harness import KEY

from sigsci_iga import app
from sigsci_iga.errors import AuthenticationError, ConfigError, rule_for
from sigsci_iga.settings import Settings


class Cli:
    """Runs `python -m sigsci_iga` with a clean environment, a repository file and a key."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
        self.env.update(
            SIGSCI_IGA_DATABASE_URL=self.database_url,
            SIGSCI_IGA_TOKEN_KEY=KEY,
            COLUMNS="200",
            NO_COLOR="1",
        )
        self.seen = ""

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'iga.db'}"

    def __call__(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", *args],
            cwd=self.workdir,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        self.seen += done.stdout + done.stderr
        return done

    def stored(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.workdir.iterdir() if p.name.startswith("iga"))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def authenticate(cli: Cli, token: str) -> app.Principal:
    settings = Settings(database_url=cli.database_url, token_key=SecretStr(KEY))
    with app.AppContext(settings) as ctx:
        return app.authenticate(ctx, f"Bearer {token}")


def test_create_list_and_revoke_show_a_token_once_and_never_again(cli: Cli) -> None:
    created = cli("tokens", "create", "ci-bot", "--role", "requester", "--expires", "30d")
    viewer_token = created.stdout.splitlines()[-1]
    as_json = json.loads(
        cli("tokens", "create", "ops", "--role", "admin", "--expires", "never", "--json").stdout
    )
    admin_token = as_json.pop("token")
    printed_once = cli.seen

    assert "shown only this once" in created.stdout
    assert as_json["name"] == "ops"
    assert (as_json["role"], as_json["expires_at"], as_json["state"]) == ("admin", None, "active")
    principal = authenticate(cli, viewer_token)
    assert (principal.name, principal.role) == ("ci-bot", app.Role.REQUESTER)
    assert authenticate(cli, admin_token).role is app.Role.ADMIN

    listed = cli("tokens", "list").stdout
    listed_json = cli("tokens", "list", "--json").stdout
    revoked = cli("tokens", "revoke", "ci-bot").stdout
    after = {t["name"]: t for t in json.loads(cli("tokens", "list", "--json").stdout)}

    assert "ci-bot" in listed
    assert "requester" in listed
    assert "token ci-bot revoked at" in revoked
    assert [t["name"] for t in json.loads(listed_json)] == ["ci-bot", "ops"]
    assert after["ci-bot"]["state"] == "revoked"
    assert after["ci-bot"]["revoked_at"] is not None
    assert after["ci-bot"]["last_used_at"] is not None  # authenticated above
    assert after["ops"]["state"] == "active"
    assert set(after["ops"]) == {
        "name",
        "role",
        "state",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    }
    with pytest.raises(AuthenticationError):
        authenticate(cli, viewer_token)

    keys = app.token_keys(Settings(token_key=SecretStr(KEY)))
    digests = [keys.digest(token) for token in (viewer_token, admin_token)]
    everything_after = cli.seen[len(printed_once) :]
    stored = cli.stored()
    for token in (viewer_token, admin_token):
        assert printed_once.count(token) == 1
        assert token not in everything_after
        assert token.encode() not in stored
        assert token.rsplit("_", 1)[1][:43].encode() not in stored  # the secret part alone
    for digest in digests:
        assert digest not in cli.seen
        assert digest.encode() in stored  # the scan does see the rows
    assert KEY not in cli.seen
    assert KEY.encode() not in stored


def test_without_a_key_create_fails_with_one_clear_line_but_list_and_revoke_work(cli: Cli) -> None:
    cli("tokens", "create", "ci", "--role", "viewer")

    done = cli(
        "tokens",
        "create",
        "other",
        "--role",
        "viewer",
        code=rule_for(ConfigError).exit_code,
        SIGSCI_IGA_TOKEN_KEY="",
    )

    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "SIGSCI_IGA_TOKEN_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr
    cli("tokens", "list", SIGSCI_IGA_TOKEN_KEY="")
    cli("tokens", "revoke", "ci", SIGSCI_IGA_TOKEN_KEY="")


def test_the_key_can_be_a_mounted_file(cli: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)

    done = cli(
        "tokens",
        "create",
        "ci",
        "--role",
        "viewer",
        SIGSCI_IGA_TOKEN_KEY="",
        SIGSCI_IGA_TOKEN_KEY_FILE=str(key_file),
    )

    assert authenticate(cli, done.stdout.splitlines()[-1]).name == "ci"
    assert KEY not in cli.seen


def test_a_taken_name_an_unknown_role_and_an_unknown_token_are_refused(cli: Cli) -> None:
    cli("tokens", "create", "ci", "--role", "viewer")

    taken = cli("tokens", "create", "ci", "--role", "admin", code=2)
    unknown_role = cli("tokens", "create", "x", "--role", "root", code=2)
    bad_lifetime = cli("tokens", "create", "y", "--role", "viewer", "--expires", "0d", code=2)
    unknown = cli("tokens", "revoke", "nope", code=4)

    assert "already taken" in taken.stderr
    assert "root" in unknown_role.stderr
    assert "lifetime '0d'" in bad_lifetime.stderr
    assert "'nope' does not exist" in unknown.stderr
    assert [t["name"] for t in json.loads(cli("tokens", "list", "--json").stdout)] == ["ci"]
