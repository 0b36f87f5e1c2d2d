"""Settings come from the environment and a config file, and never show secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigsci_iga.errors import ConfigError
from sigsci_iga.settings import DEFAULT_API_URL, load_settings

ENV = [
    "SIGSCI_API_URL",
    "SIGSCI_EMAIL",
    "SIGSCI_TOKEN",
    "SIGSCI_CORP",
    "SIGSCI_PASSWORD",
    "SIGSCI_IGA_DATABASE_URL",
    "SIGSCI_IGA_CONFIG",
    "SIGSCI_IGA_RATE_LIMIT",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_real_dashboard_and_a_local_sqlite_file() -> None:
    settings = load_settings()
    assert settings.api_url == DEFAULT_API_URL
    assert settings.database_url == "sqlite:///sigsci-iga.db"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGSCI_API_URL", "http://127.0.0.1:8765/")
    monkeypatch.setenv("SIGSCI_EMAIL", "Owner@Example.com")
    monkeypatch.setenv("SIGSCI_TOKEN", "tok-secret-value")
    monkeypatch.setenv("SIGSCI_CORP", "testcorp")
    monkeypatch.setenv("SIGSCI_IGA_DATABASE_URL", "sqlite:///x.db")
    settings = load_settings()
    assert settings.api_url == "http://127.0.0.1:8765"
    assert settings.email == "owner@example.com"
    assert settings.corp == "testcorp"
    assert settings.database_url == "sqlite:///x.db"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "tok-secret-value"


def test_secrets_never_appear_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGSCI_TOKEN", "tok-secret-value")
    monkeypatch.setenv("SIGSCI_PASSWORD", "pw-secret-value")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "tok-secret-value" not in text
        assert "pw-secret-value" not in text


def test_config_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "iga.toml"
    config.write_text(
        'corp = "filecorp"\nemail = "file@example.com"\nrate_limit_per_minute = 120\n'
    )
    monkeypatch.setenv("SIGSCI_CORP", "envcorp")
    settings = load_settings(config)
    assert settings.corp == "envcorp"
    assert settings.email == "file@example.com"
    assert settings.rate_limit_per_minute == 120


def test_unknown_keys_in_the_config_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "iga.toml"
    config.write_text('corpp = "typo"\n')
    with pytest.raises(ConfigError, match="corpp"):
        load_settings(config)


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGSCI_API_URL", "ftp://example.com")
    with pytest.raises(ConfigError, match="api_url"):
        load_settings()


def test_missing_credentials_are_named() -> None:
    with pytest.raises(ConfigError, match="SIGSCI_EMAIL, SIGSCI_CORP, SIGSCI_TOKEN"):
        load_settings().require_credentials()


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2-secret@127.0.0.1:8765",
        "https://iga:hunter2-secret@dashboard.signalsciences.net/",
        "https://:hunter2-secret@dashboard.signalsciences.net",
        "HTTPS://user:hunter2-secret@Dashboard.example",
        "https://hunter2-secret@dashboard.signalsciences.net",
    ],
)
def test_an_api_url_with_credentials_is_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SIGSCI_API_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "SIGSCI_API_URL" in message
    assert "credentials" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["http://", "https:///path", "dashboard.example", "ftp://x.io"])
def test_an_api_url_without_a_host_or_an_http_scheme_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SIGSCI_API_URL", url)
    with pytest.raises(ConfigError, match="SIGSCI_API_URL"):
        load_settings()


@pytest.mark.parametrize("variable", ["SIGSCI_TOKEN", "SIGSCI_PASSWORD"])
@pytest.mark.parametrize("value", ["", " ", "\t\n", "   "])
def test_an_empty_or_blank_secret_is_a_configuration_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_a_blank_secret_in_the_config_file_names_its_key(tmp_path: Path) -> None:
    config = tmp_path / "iga.toml"
    config.write_text('token = "  "\n')
    with pytest.raises(ConfigError, match="token"):
        load_settings(config)


def test_a_secret_with_surrounding_whitespace_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGSCI_TOKEN", "  tok-secret-value\n")
    settings = load_settings()
    assert settings.token is not None
    assert settings.token.get_secret_value() == "tok-secret-value"


NUMBERS = {
    "SIGSCI_IGA_RATE_LIMIT": ["nan", "inf", "-inf", "0", "-1", "1e12"],
    "SIGSCI_IGA_TIMEOUT": ["nan", "inf", "0", "-1", "1e9"],
    "SIGSCI_IGA_MAX_CONCURRENCY": ["nan", "0", "-1", "1000", "99999999999999999999999"],
    "SIGSCI_IGA_READ_ATTEMPTS": ["0", "-1", "100"],
    "SIGSCI_IGA_TASK_MAX_ATTEMPTS": ["0", "1000"],
    "SIGSCI_IGA_RETRY_BASE_SECONDS": ["nan", "inf", "0", "-2", "1e9"],
    "SIGSCI_IGA_DB_BUSY_TIMEOUT": ["nan", "inf", "0", "1e9"],
    "SIGSCI_IGA_DB_STATEMENT_TIMEOUT": ["nan", "inf", "0", "-1"],
    "SIGSCI_IGA_MAX_BODY_BYTES": ["nan", "inf", "0", "-1", "1.5", "100", "1e30"],
    "SIGSCI_IGA_MAX_SITES": ["nan", "inf", "0", "-1", "2.5", "99999999999"],
}


def test_the_read_bounds_default_to_a_50000_user_corp_and_can_be_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings()
    assert defaults.max_body_bytes == 256 * 1024 * 1024
    assert defaults.max_sites == 100_000
    monkeypatch.setenv("SIGSCI_IGA_MAX_BODY_BYTES", "1048576")
    monkeypatch.setenv("SIGSCI_IGA_MAX_SITES", "50")
    chosen = load_settings()
    assert (chosen.max_body_bytes, chosen.max_sites) == (1_048_576, 50)


@pytest.mark.parametrize(
    ("variable", "value"),
    [(variable, value) for variable, values in NUMBERS.items() for value in values],
)
def test_numbers_that_make_no_sense_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()
