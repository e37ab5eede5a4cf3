"""The bot's settings: the provider settings plus Telegram's."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from services.config import AdminIds, ServiceSettings, SettingsError, describe_validation_error

LOCALES = ("en", "ru", "zh_Hans")
_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class Settings(ServiceSettings):
    bot_token: SecretStr = Field(description="the bot token from @BotFather, like 123456:ABC-DEF")
    telegram_api_url: str = Field(
        "https://api.telegram.org", description="the Bot API base URL, http(s)://host[:port]"
    )
    telegram_api_local: bool = Field(
        False, description="true when TELEGRAM_API_URL is a local Bot API server run with --local"
    )
    webhook_url: str = Field(
        "", description="the public https URL Telegram posts updates to, or empty for polling"
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="1-256 characters of A-Z, a-z, 0-9, _ and -"
    )
    webhook_listen: str = Field(
        "0.0.0.0:8080", description="host:port the webhook server listens on"
    )
    default_locale: Literal["en", "ru", "zh_Hans"] = Field(
        "en", description="one of en, ru, zh (zh-hans and zh-cn also mean Chinese)"
    )
    admin_ids: AdminIds = Field(
        default_factory=list, description="comma-separated Telegram user ids, like 1234,5678"
    )
    flow_timeout: float = Field(
        600, gt=0, description="seconds a flow waits for a photo before it expires, above 0"
    )
    analyze_sensitive_attributes: bool = Field(
        False, description="true to show race and the beauty score in /analyze"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="one of DEBUG, INFO, WARNING, ERROR"
    )
    user_in_flight: int = Field(
        2, ge=1, le=100, description="requests one user may have running at once, 1 or more"
    )
    user_rate: float = Field(
        10, ge=0, description="requests one user may start a minute, 0 for no limit"
    )
    user_burst: int = Field(
        5, ge=1, description="requests one user may start at once before USER_RATE applies"
    )
    metrics_listen: str = Field(
        "", description="host:port for /metrics and /health, or empty for none"
    )
    default_spec: str = Field(
        "",
        description="a document spec id such as us-passport or schengen (see /spec), "
        "one whose photo is not taken at the office, or empty for the generic check",
    )

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise PydanticCustomError("missing", "Field required")
        if not _TOKEN.match(value.get_secret_value().strip()):
            raise ValueError("not a bot token")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if secret and not _SECRET.match(secret):
            raise ValueError("bad secret")
        return SecretStr(secret)

    @field_validator("webhook_listen", "metrics_listen")
    @classmethod
    def _listen(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() and info.field_name == "metrics_listen":
            return ""
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port")
        return value.strip()

    def webhook_problems(self) -> list[str]:
        """Webhook mode takes updates from whoever posts to the URL: only the secret tells
        Telegram's posts apart, and a plain-http URL would show it to the network."""
        if not self.webhook_url:
            return []
        problems: list[str] = []
        if not self.webhook_secret.get_secret_value():
            problems.append(
                "WEBHOOK_SECRET is missing: WEBHOOK_URL (webhook mode) needs it, so that only "
                "Telegram's posts are taken as updates"
            )
        if not self.webhook_url.startswith("https://") and not self.telegram_api_local:
            problems.append(
                "WEBHOOK_URL is invalid: expected an https:// URL (http only with a local Bot "
                "API server, TELEGRAM_API_LOCAL=true)"
            )
        return problems

    @property
    def listen_address(self) -> tuple[str, int]:
        return _address(self.webhook_listen)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        return _address(self.metrics_listen) if self.metrics_listen else None

    @field_validator("default_locale", mode="before")
    @classmethod
    def _locale(cls, value: Any) -> Any:
        if isinstance(value, str):
            from bot.i18n import match_locale

            return match_locale(value) or value
        return value

    @field_validator("default_spec")
    @classmethod
    def _spec(cls, value: str) -> str:
        """A spec users without a choice of their own are checked against, as its id."""
        from services.specs import Medium, UnknownSpec, catalogue

        if not value.strip():
            return ""
        try:
            spec = catalogue().get(value)
        except UnknownSpec:
            raise ValueError("unknown spec") from None
        if spec.medium is Medium.OFFICE:
            raise ValueError("taken at the office")
        return spec.id

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            return [p for p in parts if p]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


def _address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def load_settings(**overrides: Any) -> Settings:
    """Read and check every setting; raise ``SettingsError`` with one line per problem."""
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error, Settings)) from None
    problems = settings.webhook_problems() + settings.credential_problems()
    if not problems:
        from services.metering import timing_problems  # here: it pulls in SQLAlchemy

        problems = timing_problems(settings)
    if problems:
        raise SettingsError(problems)
    return settings
