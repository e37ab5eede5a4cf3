"""Provider settings, read from the environment and ``.env``.

These names are the operators' contract (see ``.env.example``). The bot adds its
Telegram settings on top in ``bot.config``; a plain script can use this class alone.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.models import Operation

CheckProvider = Literal["local", "jumdata", "huawei"]
DetectProvider = Literal["local", "jumdata"]
CompareProvider = Literal["local", "jdcloud"]
AnalyzeProvider = Literal["local", "jdcloud"]


class SettingsError(Exception):
    """Start-up configuration is wrong; each line names one variable and what it expects."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    check_provider: CheckProvider = Field("local", description="one of local, jumdata, huawei")
    detect_provider: DetectProvider = Field("local", description="one of local, jumdata")
    compare_provider: CompareProvider = Field("local", description="one of local, jdcloud")
    analyze_provider: AnalyzeProvider = Field("local", description="one of local, jdcloud")

    jumdata_app_id: str = Field("", description="the appId jumdata assigned to you")
    jumdata_app_secret: SecretStr = Field(SecretStr(""), description="the appSecret from jumdata")
    jumdata_url: str = Field("https://api.jumdata.com", description="an http(s) base URL")

    huawei_app_key: str = Field("", description="the AppKey of your marketplace purchase")
    huawei_app_secret: SecretStr = Field(SecretStr(""), description="the AppSecret of the purchase")
    huawei_check_url: str = Field("", description="the full https URL of the purchased API")

    jdcloud_access_key: str = Field("", description="a JD Cloud AccessKey")
    jdcloud_secret_key: SecretStr = Field(SecretStr(""), description="the matching SecretKey")
    jdcloud_url: str = Field("https://aiapi.jdcloud.com", description="an http(s) base URL")

    provider_timeout: float = Field(
        15.0, gt=0, le=300, description="seconds to wait for a provider, a number above 0"
    )

    local_landmarks: Literal["mesh", "68", "5"] = Field(
        "mesh",
        description="mesh (MediaPipe's face mesh, commercial use), 68 (the iBUG 300-W "
        "model, non-commercial) or 5 (fewer measurements)",
    )
    local_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="a whole number of worker processes, 1 or more",
    )
    local_queue_limit: int = Field(
        32, ge=1, description="how many photos may wait for the local engine, 1 or more"
    )
    local_models_dir: str = Field(
        "", description="a folder for the offline engine's model files, empty for the default"
    )
    local_detector: Literal["hog", "cnn"] = Field(
        "hog", description="hog (fast, the default) or cnn (slow, several GB of memory)"
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///./data/facecheck.db",
        description="an SQLAlchemy async URL: sqlite+aiosqlite:///path or "
        "postgresql+asyncpg://user@host/db",
    )
    redis_url: str = Field("", description="a redis:// URL, or empty for memory")
    user_daily_limit: int = Field(0, ge=0, description="a whole number, 0 for no limit")
    quota_timezone: str = Field("UTC", description="an IANA time zone such as Europe/Moscow")
    provider_reserve: int = Field(
        0, ge=0, description="calls of each provider kept back for admins, 0 or more"
    )
    fallback_to_local: bool = Field(
        False, description="true to answer with the local engine when a cloud provider cannot"
    )
    reservation_ttl: float = Field(
        300, gt=0, description="seconds after which an unfinished reservation is released"
    )
    keep_unit_on_unknown: bool = Field(
        False,
        description="true to count a call whose outcome is unknown (a timeout after the "
        "request was sent) against the user's allowance",
    )
    local_timeout: float = Field(
        60.0, gt=0, le=600, description="seconds the offline engine may take on one request"
    )
    image_workers: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        le=32,
        description="a whole number of threads that decode and draw photos, 1 or more",
    )
    budget_alert_at: str = Field(
        "",
        description="a number of calls (like 100) or a percentage (like 10%) of the most "
        "remaining calls seen since the last top-up, or empty for no alerts",
    )

    @field_validator("budget_alert_at")
    @classmethod
    def _alert_at(cls, value: str) -> str:
        """A number of calls or a percentage (``services.alerts.AlertThreshold``)."""
        from services.alerts import AlertThreshold

        AlertThreshold.parse(value)
        return value.strip()

    @field_validator("local_landmarks", mode="before")
    @classmethod
    def _landmarks(cls, value: object) -> object:
        return str(value).strip().lower() if isinstance(value, int | str) else value

    @field_validator("quota_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("jumdata_url", "jdcloud_url", "huawei_check_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    def provider_for(self, operation: Operation) -> str:
        chosen: dict[Operation, str] = {
            Operation.CHECK: self.check_provider,
            Operation.COMPARE: self.compare_provider,
            Operation.DETECT: self.detect_provider,
            Operation.ANALYZE: self.analyze_provider,
        }
        return chosen[operation]

    def credential_problems(self) -> list[str]:
        """A chosen cloud provider without its credentials is a start-up error."""
        needs: dict[str, list[tuple[str, str]]] = {
            "jumdata": [
                ("JUMDATA_APP_ID", self.jumdata_app_id),
                ("JUMDATA_APP_SECRET", self.jumdata_app_secret.get_secret_value()),
            ],
            "huawei": [
                ("HUAWEI_APP_KEY", self.huawei_app_key),
                ("HUAWEI_APP_SECRET", self.huawei_app_secret.get_secret_value()),
                ("HUAWEI_CHECK_URL", self.huawei_check_url),
            ],
            "jdcloud": [
                ("JDCLOUD_ACCESS_KEY", self.jdcloud_access_key),
                ("JDCLOUD_SECRET_KEY", self.jdcloud_secret_key.get_secret_value()),
            ],
        }
        problems: list[str] = []
        seen: set[str] = set()
        for operation in Operation:
            provider = self.provider_for(operation)
            for variable, value in needs.get(provider, []):
                if not value.strip() and variable not in seen:
                    seen.add(variable)
                    problems.append(
                        f"{variable} is missing: {operation.value.upper()}_PROVIDER={provider} "
                        f"needs it"
                    )
        return problems


def describe_validation_error(error: ValidationError, model: type[BaseSettings]) -> list[str]:
    """One line per bad variable: its name and what it expects, never its value."""
    lines: list[str] = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        field = model.model_fields.get(name)
        expected = field.description if field and field.description else item["msg"]
        if item["type"] == "missing":
            lines.append(f"{name.upper()} is missing: expected {expected}")
        else:
            lines.append(f"{name.upper()} is invalid: expected {expected}")
    return lines


AdminIds = Annotated[list[int], NoDecode]
