"""Settings from the environment and an optional TOML config file; built by `load_settings`, never at import."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sigsci_iga.domain.emails import normalize_email
from sigsci_iga.errors import ConfigError, InvalidInputError
from sigsci_iga.files import read_regular_file

DEFAULT_API_URL = "https://dashboard.signalsciences.net"
CONFIG_ENV = "SIGSCI_IGA_CONFIG"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def check_api_url(value: str) -> str:
    """An http(s) URL with a host and no credentials, without a trailing slash.

    The ValueError never repeats the URL: one with credentials in it is a secret.
    """
    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # parsing the port is what validates it
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError(
            f"must not carry credentials (user:password@{parts.hostname or 'host'}); "
            "give the token in SIGSCI_TOKEN or a --token-env/--token-file reference"
        )
    if not parts.hostname:
        raise ValueError("has no host")
    return value


class Settings(BaseSettings):
    """Everything sigsci-iga needs to reach one corp and its repository."""

    model_config = SettingsConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    api_url: str = Field(
        default=DEFAULT_API_URL, validation_alias=_env("SIGSCI_API_URL", "api_url")
    )
    email: str | None = Field(default=None, validation_alias=_env("SIGSCI_EMAIL", "email"))
    token: SecretStr | None = Field(default=None, validation_alias=_env("SIGSCI_TOKEN", "token"))
    corp: str | None = Field(default=None, validation_alias=_env("SIGSCI_CORP", "corp"))
    password: SecretStr | None = Field(
        default=None, validation_alias=_env("SIGSCI_PASSWORD", "password")
    )
    database_url: str = Field(
        default="sqlite:///sigsci-iga.db",
        validation_alias=_env("SIGSCI_IGA_DATABASE_URL", "database_url"),
    )
    rate_limit_per_minute: float = Field(
        default=600.0,
        gt=0,
        # A million requests a second: beyond any API; larger values are typos.
        le=60_000_000,
        allow_inf_nan=False,
        validation_alias=_env("SIGSCI_IGA_RATE_LIMIT", "rate_limit_per_minute"),
    )
    max_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        validation_alias=_env("SIGSCI_IGA_MAX_CONCURRENCY", "max_concurrency"),
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("SIGSCI_IGA_TIMEOUT", "timeout_seconds"),
    )
    read_attempts: int = Field(
        default=5, ge=1, le=20, validation_alias=_env("SIGSCI_IGA_READ_ATTEMPTS", "read_attempts")
    )
    # A body is counted as it is decoded; 256 MiB holds a 50,000-user corp's users list.
    max_body_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        # 16 GiB: more is a typo, not a corp.
        le=16 * 1024**3,
        validation_alias=_env("SIGSCI_IGA_MAX_BODY_BYTES", "max_body_bytes"),
    )
    # A server that invents sites page after page is refused once it passes this many.
    max_sites: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        validation_alias=_env("SIGSCI_IGA_MAX_SITES", "max_sites"),
    )

    instant_provisioning: bool = Field(
        default=True,
        validation_alias=_env("SIGSCI_IGA_INSTANT_PROVISIONING", "instant_provisioning"),
    )
    task_max_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        validation_alias=_env("SIGSCI_IGA_TASK_MAX_ATTEMPTS", "task_max_attempts"),
    )
    retry_base_seconds: float = Field(
        default=2.0,
        gt=0,
        # Doubled per attempt: an hour to start with already waits days by the tenth try.
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("SIGSCI_IGA_RETRY_BASE_SECONDS", "retry_base_seconds"),
    )

    db_busy_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("SIGSCI_IGA_DB_BUSY_TIMEOUT", "db_busy_timeout_seconds"),
    )
    db_statement_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        validation_alias=_env("SIGSCI_IGA_DB_STATEMENT_TIMEOUT", "db_statement_timeout_seconds"),
    )

    correlation_rule: str = Field(
        default="email",
        validation_alias=_env("SIGSCI_IGA_CORRELATION_RULE", "correlation_rule"),
    )

    # The server key that service tokens are hashed with (HMAC-SHA256): the value itself, or
    # better a mounted secret file. `_previous` is the key being rotated out: tokens hashed
    # with it still verify, and are re-hashed with the current key when next used.
    token_key: SecretStr | None = Field(
        default=None, validation_alias=_env("SIGSCI_IGA_TOKEN_KEY", "token_key")
    )
    token_key_file: Path | None = Field(
        default=None, validation_alias=_env("SIGSCI_IGA_TOKEN_KEY_FILE", "token_key_file")
    )
    token_key_previous: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SIGSCI_IGA_TOKEN_KEY_PREVIOUS", "token_key_previous"),
    )
    token_key_previous_file: Path | None = Field(
        default=None,
        validation_alias=_env("SIGSCI_IGA_TOKEN_KEY_PREVIOUS_FILE", "token_key_previous_file"),
    )

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str) -> str:
        return check_api_url(value)

    @field_validator("token", "password")
    @classmethod
    def _secret_is_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # A blank secret would be sent and refused with a 401 that hides the real mistake.
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        if not secret:
            raise ValueError("is empty or only whitespace; set it, or unset it")
        return SecretStr(secret)

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str | None) -> str | None:
        if not value:
            return value
        try:
            return normalize_email(value, "the email")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    def require_credentials(self) -> tuple[str, str]:
        """Return (email, corp) or raise ConfigError naming what is missing."""
        missing = [
            name
            for name, value in (
                ("SIGSCI_EMAIL", self.email),
                ("SIGSCI_CORP", self.corp),
            )
            if not value
        ]
        if self.token is None and self.password is None:
            missing.append("SIGSCI_TOKEN (or SIGSCI_PASSWORD)")
        if missing:
            raise ConfigError("missing settings: " + ", ".join(missing))
        assert self.email is not None
        assert self.corp is not None
        return self.email, self.corp


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings: explicit overrides, then the environment, then the config file, then defaults.

    The config file is TOML with the field names as keys (`api_url`, `corp`, ...); its path comes
    from `config_file` or the SIGSCI_IGA_CONFIG environment variable.
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    file_values: dict[str, Any] = {}
    if path is not None:
        data = read_regular_file(path, "config file", error=ConfigError)
        try:
            file_values = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    env_names = {
        name: next(a for a in field.validation_alias.choices if isinstance(a, str))
        for name, field in Settings.model_fields.items()
        if isinstance(field.validation_alias, AliasChoices)
    }
    merged: dict[str, Any] = dict(file_values)
    for name, env_name in env_names.items():
        if env_name in os.environ:
            merged[name] = os.environ[env_name]
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(err['loc'], env_names)}: {_reason(err['msg'])}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        source = f" (config file {path})" if path else ""
        raise ConfigError(f"invalid settings{source}: {problems}") from None


def _setting_name(loc: tuple[int | str, ...], env_names: dict[str, str]) -> str:
    """`SIGSCI_TOKEN (token)`: the variable people set, and the config file's key."""
    field = ".".join(str(p) for p in loc)
    env_name = env_names.get(field)
    return f"{env_name} ({field})" if env_name else field or "settings"


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")
