"""Creating and authenticating service tokens through the application layer, on both backends."""

from __future__ import annotations

import hmac
import re
import secrets
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from tokens_harness import KEY, OTHER_KEY, Clock, ContextFactory

from sigsci_iga import app
from sigsci_iga.errors import AuthenticationError, ConfigError, InvalidInputError, rule_for
from sigsci_iga.store import Repository
from sigsci_iga.store.tables import metadata

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FORMAT = re.compile(r"sigsci_iga_([0-9A-Za-z]{12})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def base62(value: int, width: int) -> str:
    text = ""
    for _ in range(width):
        value, digit = divmod(value, 62)
        text = BASE62[digit] + text
    assert value == 0
    return text


def with_check(body: str) -> str:
    """The documented format's check: CRC-32 of everything before it, 6 base62 characters."""
    return body + base62(zlib.crc32(body.encode()), 6)


def parts(token: str) -> tuple[str, str]:
    match = FORMAT.fullmatch(token)
    assert match is not None, token
    return match[1], match[2]


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(ctx: app.AppContext, header: str | None) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        app.authenticate(ctx, header)
    return caught.value


def test_a_token_has_the_documented_format_and_256_bits_from_secrets(
    ctx: app.AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[bytes] = []
    real = secrets.token_bytes

    def token_bytes(n: int) -> bytes:
        drawn.append(real(n))
        return drawn[-1]

    monkeypatch.setattr(secrets, "token_bytes", token_bytes)

    token = app.create_token(ctx, "ci", "viewer").token.get_secret_value()

    _public_id, secret = parts(token)
    assert [len(d) for d in drawn] == [32]
    assert secret == base62(int.from_bytes(drawn[0], "big"), 43)
    assert token == with_check(token[:-6])
    assert len(token) == 73


def test_a_created_token_authenticates_as_its_name_and_role(ctx: app.AppContext) -> None:
    issued = app.create_token(ctx, "deploy-bot", app.Role.APPROVER, expires_in=timedelta(days=7))

    principal = app.authenticate(ctx, bearer(issued.token.get_secret_value()))

    assert principal == app.Principal(
        name="deploy-bot", role=app.Role.APPROVER, expires_at=issued.record.expires_at
    )
    assert issued.record.expires_at == ctx.clock() + timedelta(days=7)
    assert "sigsci_iga_" not in repr(issued)


def test_the_scheme_is_case_insensitive_and_surrounding_blanks_are_ignored(
    ctx: app.AppContext,
) -> None:
    token = app.create_token(ctx, "ci", "viewer").token.get_secret_value()

    assert app.authenticate(ctx, f"  bearer   {token}  ").name == "ci"


def _other_secret(token: str) -> str:
    public_id, secret = parts(token)
    flipped = ("1" if secret[0] != "1" else "2") + secret[1:]
    return with_check(f"sigsci_iga_{public_id}_{flipped}")


def _unknown_id(token: str) -> str:
    public_id, secret = parts(token)
    return with_check(f"sigsci_iga_{'Z' * 12 if public_id != 'Z' * 12 else 'Y' * 12}_{secret}")


def _bad_check(token: str) -> str:
    return token[:-1] + ("a" if token[-1] != "a" else "b")


#: Each builds an Authorization value from a good token; all must fail alike.
BAD_HEADERS: dict[str, Callable[[str], str | None]] = {
    "missing": lambda t: None,
    "empty": lambda t: "",
    "scheme only": lambda t: "Bearer",
    "another scheme": lambda t: f"Basic {t}",
    "no scheme": lambda t: t,
    "wrong secret": lambda t: bearer(_other_secret(t)),
    "unknown identifier": lambda t: bearer(_unknown_id(t)),
    "wrong check": lambda t: bearer(_bad_check(t)),
    "truncated": lambda t: bearer(t[:-1]),
    "extra character": lambda t: bearer(t + "x"),
    "two tokens": lambda t: bearer(f"{t} {t}"),
    "malformed": lambda t: bearer("sigsci_iga_not-a-token"),
    "over-long (10 kB)": lambda t: bearer(t + "A" * 10_000),
    "over-long header of a valid token": lambda t: bearer(t) + " " * 10_000,
    "non-ascii": lambda t: bearer(t[:-7] + "é" + t[-6:]),
    "non-ascii look-alike digit": lambda t: bearer(t.replace(t[20], "\u0661", 1)),
    "control character": lambda t: bearer(t[:30] + "\x00" + t[31:]),
}


@pytest.mark.parametrize("build", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_a_bad_authorization_fails_with_the_same_401_error_whatever_is_wrong(
    ctx: app.AppContext, build: Callable[[str], str | None]
) -> None:
    token = app.create_token(ctx, "ci", "admin").token.get_secret_value()

    error = refused(ctx, build(token))

    assert str(error) == AuthenticationError.MESSAGE
    assert rule_for(error).http_status == 401
    assert token not in str(error)


def test_expired_revoked_and_foreign_key_tokens_fail_with_the_same_401_error(
    make_ctx: ContextFactory, clock: Clock
) -> None:
    ctx = make_ctx()
    expiring = app.create_token(ctx, "short", "viewer", expires_in=timedelta(minutes=5))
    revoked = app.create_token(ctx, "gone", "viewer")
    app.revoke_token(ctx, "gone")
    foreign = app.create_token(make_ctx(token_key=SecretStr(OTHER_KEY)), "foreign", "viewer")
    clock.advance(minutes=5)

    errors = [
        refused(ctx, bearer(issued.token.get_secret_value()))
        for issued in (expiring, revoked, foreign)
    ]

    assert [e.reason for e in errors] == ["expired", "revoked", "mismatch"]
    assert {str(e) for e in errors} == {AuthenticationError.MESSAGE}


def test_a_never_expiring_token_still_works_years_later(ctx: app.AppContext, clock: Clock) -> None:
    issued = app.create_token(ctx, "forever", "viewer", expires_in=None)
    clock.advance(days=3650)

    assert app.authenticate(ctx, bearer(issued.token.get_secret_value())).name == "forever"


def test_hashes_are_compared_in_constant_time_and_only_so(
    ctx: app.AppContext, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = app.create_token(ctx, "ci", "viewer").token.get_secret_value()
    credential = repo.tokens.credential(parts(token)[0])
    assert credential is not None
    real = hmac.compare_digest
    calls: list[tuple[object, object]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    app.authenticate(ctx, bearer(token))
    refused(ctx, bearer(_other_secret(token)))
    refused(ctx, bearer(_unknown_id(token)))

    assert [stored for _, stored in calls] == [credential.token_hash] * 2 + ["0" * 64]
    # The decision is compare_digest's alone: with it saying no, the right token fails.
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    assert refused(ctx, bearer(token)).reason == "mismatch"


def test_last_used_is_written_at_most_once_a_minute(
    ctx: app.AppContext, repo: Repository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = app.create_token(ctx, "ci", "viewer").token.get_secret_value()
    writes: list[object] = []
    real = repo.tokens.mark_used

    def counted(*args: object, **kw: object) -> bool:
        writes.append(kw["at"])
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(repo.tokens, "mark_used", counted)
    start = clock.now
    for _ in range(13):  # every 10 s for two minutes
        app.authenticate(ctx, bearer(token))
        clock.advance(seconds=10)

    assert writes == [start, start + timedelta(seconds=70)]
    assert repo.tokens.get("ci").last_used_at == start + timedelta(seconds=70)


def test_a_token_hashed_with_the_previous_key_works_and_is_rehashed_with_the_current_one(
    make_ctx: ContextFactory, repo: Repository
) -> None:
    token = app.create_token(make_ctx(), "ci", "viewer").token.get_secret_value()
    rotated = make_ctx(token_key=SecretStr(OTHER_KEY), token_key_previous=SecretStr(KEY))

    assert app.authenticate(rotated, bearer(token)).name == "ci"

    credential = repo.tokens.credential(parts(token)[0])
    assert credential is not None
    assert credential.token_hash == app.token_keys(rotated.settings).digest(token)
    after = make_ctx(token_key=SecretStr(OTHER_KEY))
    assert app.authenticate(after, bearer(token)).name == "ci"
    assert refused(make_ctx(), bearer(token)).reason == "mismatch"


def test_without_a_key_creating_and_verifying_name_the_setting_to_set(
    make_ctx: ContextFactory,
) -> None:
    token = app.create_token(make_ctx(), "ci", "viewer").token.get_secret_value()
    keyless = make_ctx(token_key=None)

    for attempt in (
        lambda: app.create_token(keyless, "other", "viewer"),
        lambda: app.authenticate(keyless, bearer(token)),
    ):
        with pytest.raises(ConfigError, match="SIGSCI_IGA_TOKEN_KEY_FILE") as missing:
            attempt()
        assert rule_for(missing.value).http_status == 500


def test_a_short_key_is_refused_without_being_shown(make_ctx: ContextFactory) -> None:
    short = "short-key-1234"
    with pytest.raises(ConfigError, match="too short") as caught:
        app.create_token(make_ctx(token_key=SecretStr(short)), "ci", "viewer")
    assert short not in str(caught.value)


def test_the_key_can_come_from_a_file_but_not_from_a_file_and_a_value_at_once(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    key_file = tmp_path / "token-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    from_file = make_ctx(token_key=None, token_key_file=key_file)
    token = app.create_token(from_file, "ci", "viewer").token.get_secret_value()

    assert app.authenticate(make_ctx(), bearer(token)).name == "ci"
    with pytest.raises(ConfigError, match="not both"):
        app.authenticate(make_ctx(token_key_file=key_file), bearer(token))
    with pytest.raises(ConfigError, match="cannot open") as missing:
        app.authenticate(make_ctx(token_key=None, token_key_file=tmp_path / "no"), bearer(token))
    assert KEY not in str(missing.value)


def test_keys_are_never_shown_by_settings_or_the_key_holder(make_ctx: ContextFactory) -> None:
    ctx = make_ctx(token_key_previous=SecretStr(OTHER_KEY))
    keys = app.token_keys(ctx.settings)

    for text in (repr(ctx.settings), str(ctx.settings), repr(keys), str(keys)):
        assert KEY not in text
        assert OTHER_KEY not in text


@pytest.mark.parametrize(
    ("name", "role", "problem"),
    [
        ("CI", "viewer", "lower-case"),
        ("", "viewer", "lower-case"),
        ("a" * 101, "viewer", "lower-case"),
        ("ci bot", "viewer", "lower-case"),
        ("ci", "root", "role 'root'"),
    ],
)
def test_bad_names_and_roles_are_refused_before_anything_is_stored(
    ctx: app.AppContext, repo: Repository, name: str, role: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        app.create_token(ctx, name, role)
    assert repo.tokens.list() == []


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("never", None),
        (" NEVER ", None),
    ],
)
def test_lifetimes_read_as_documented(text: str, lifetime: timedelta | None) -> None:
    assert app.parse_lifetime(text) == lifetime


@pytest.mark.parametrize("text", ["0d", "-1d", "90", "d", "1y", "1.5d", "9999999d", ""])
def test_other_lifetimes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="lifetime"):
        app.parse_lifetime(text)


def stored_text(repo: Repository, repo_url: str) -> bytes:
    """Everything the repository holds: the SQLite files' bytes, or every PostgreSQL row."""
    if repo_url.startswith("sqlite"):
        repo.close()  # checkpoints the WAL; the files are read raw anyway
        database = Path(repo_url.removeprefix("sqlite:///"))
        files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
        return b"".join(p.read_bytes() for p in files)
    chunks = []
    with repo.engine.connect() as conn:
        for table in metadata.sorted_tables:
            # Table names come from our own metadata, not from input.
            query = f"SELECT CAST(t AS text) FROM {table.name} t"  # noqa: S608
            rows = conn.execute(sa.text(query))
            chunks.extend(row[0].encode() for row in rows)
    return b"\n".join(chunks)


def test_neither_tokens_nor_their_secret_parts_nor_the_key_are_ever_stored(
    ctx: app.AppContext, repo: Repository, repo_url: str
) -> None:
    tokens = [
        app.create_token(ctx, f"t{i}", role).token.get_secret_value()
        for i, role in enumerate(app.Role)
    ]
    for token in tokens:
        app.authenticate(ctx, bearer(token))
    app.revoke_token(ctx, "t0")
    hashes = {app.token_keys(ctx.settings).digest(t) for t in tokens}

    stored = stored_text(repo, repo_url)

    assert all(h.encode() in stored for h in hashes)  # the scan does see the rows
    for token in tokens:
        assert token.encode() not in stored
        assert parts(token)[1].encode() not in stored
    assert KEY.encode() not in stored
