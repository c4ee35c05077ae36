"""Settings read from the environment and `.env` (see .env.example for every key)."""

from __future__ import annotations

from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TELEGRAM_API = "https://api.telegram.org/bot"
DEFAULT_WECOM_API = "https://qyapi.weixin.qq.com/cgi-bin/"
DEFAULT_DINGTALK_API = "https://api.dingtalk.com"
DEFAULT_DINGTALK_OAPI = "https://oapi.dingtalk.com"
DEFAULT_FEISHU_DOMAIN = "https://open.feishu.cn"


class Settings(BaseSettings):
    """Every setting Duban reads; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///duban.db"
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"
    log_level: str = "INFO"

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = DEFAULT_TELEGRAM_API
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_max_rate: float = Field(default=30.0, gt=0)
    telegram_max_retries: int = Field(default=3, ge=0, le=10)
    telegram_poll_timeout: int = Field(default=10, ge=0, le=60)
    telegram_concurrent_updates: int = Field(default=16, ge=1, le=256)
    telegram_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    telegram_proxy_url: str | None = None

    wecom_corp_id: str | None = None
    wecom_agent_id: int | None = None
    wecom_secret: SecretStr | None = None
    wecom_token: SecretStr | None = None
    wecom_aes_key: SecretStr | None = None
    wecom_api_base_url: str = DEFAULT_WECOM_API
    wecom_group_webhook_key: SecretStr | None = None

    # DingTalk (钉钉): an internal app's robot in Stream mode (no public callback URL).
    dingtalk_client_id: str | None = None  # the app's Client ID (AppKey)
    dingtalk_client_secret: SecretStr | None = None  # its Client Secret (AppSecret)
    dingtalk_robot_code: str | None = None  # the robot's code; the Client ID when unset
    dingtalk_api_base_url: str = DEFAULT_DINGTALK_API  # OpenAPI and the Stream gateway
    dingtalk_oapi_base_url: str = DEFAULT_DINGTALK_OAPI  # the group custom robot's webhook
    dingtalk_group_access_token: SecretStr | None = None  # the group robot's access_token
    dingtalk_group_secret: SecretStr | None = None  # its signing secret (SEC...)

    # Feishu / Lark (飞书): a custom app's bot over the long connection (no public URL).
    feishu_app_id: str | None = None
    feishu_app_secret: SecretStr | None = None
    feishu_domain: str = DEFAULT_FEISHU_DOMAIN  # https://open.larksuite.com for Lark
    feishu_group_webhook_token: SecretStr | None = None  # the group bot's hook token
    feishu_group_secret: SecretStr | None = None  # its signing secret

    # Charts, exports and evidence files; unset or empty: duban-data beside the SQLite file.
    data_dir: Path = Path("duban-data")
    # Evidence files people send (佐证材料): the most bytes one may have, and the types taken
    # (extensions or MIME types; bot/evidence.py knows them by their content).
    evidence_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=2 * 1024**3)
    evidence_types: str = "pdf,doc,docx,xls,xlsx,jpg,png,mp4,mov"

    work_start: time = time(9, 0)
    work_end: time = time(18, 0)
    ask_weekday: int = Field(default=4, ge=0, le=6)  # Monday 0 ... Friday 4
    ask_time: time = time(10, 0)
    deadline_reminder_days: str = "7,3,1"
    overdue_every_days: int = Field(default=3, ge=1, le=30)
    overdue_max_nags: int = Field(default=5, ge=1, le=50)
    escalate_from_nag: int = Field(default=2, ge=1, le=50)
    followup_time: time = time(10, 0)
    digest_weekday: int = Field(default=0, ge=0, le=6)
    digest_time: time = time(9, 0)
    scheduler_tick_seconds: int = Field(default=60, ge=1, le=3600)
    outbox_concurrency: int = Field(default=8, ge=1, le=256)
    outbox_batch: int = Field(default=200, ge=1, le=10000)
    outbox_lease_seconds: int = Field(default=120, ge=1, le=3600)
    inbox_retention_days: int = Field(default=7, ge=1, le=3650)

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    # The public address the web app is reached at (the board's sign-in links start with it).
    web_base_url: str | None = None

    invite_valid_days: int = Field(default=7, ge=1, le=365)

    status_amber_behind: int = Field(default=10, ge=0, le=100)
    status_red_behind: int = Field(default=30, ge=0, le=100)
    status_stale_cycles: int = Field(default=2, ge=1, le=52)
    report_cycle_days: int = Field(default=7, ge=1, le=366)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value

    @field_validator(
        "telegram_bot_token",
        "telegram_webhook_secret",
        "wecom_secret",
        "wecom_token",
        "wecom_aes_key",
        "wecom_group_webhook_key",
        "dingtalk_client_secret",
        "dingtalk_group_access_token",
        "dingtalk_group_secret",
        "feishu_app_secret",
        "feishu_group_webhook_token",
        "feishu_group_secret",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "telegram_webhook_url",
        "wecom_corp_id",
        "wecom_agent_id",
        "dingtalk_client_id",
        "dingtalk_robot_code",
        "feishu_app_id",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("wecom_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value()
            if len(raw) != 43 or not all(c.isalnum() for c in raw):
                raise ValueError("the EncodingAESKey has 43 letters and digits")
        return value

    @field_validator("web_base_url", mode="before")
    @classmethod
    def _base_url_shape(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            return value
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or parts.username
            or parts.password
        ):
            raise ValueError("an http(s) address, e.g. https://duban.example.org (no query)")
        return value.strip().rstrip("/")

    @field_validator("evidence_types")
    @classmethod
    def _known_evidence_types(cls, value: str) -> str:
        from bot.evidence import type_names  # only the table of types; no I/O

        return ",".join(sorted(type_names(value)))

    @model_validator(mode="before")
    @classmethod
    def _data_dir_beside_the_database(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("data_dir"):  # unset or empty
            url = data.get("database_url")
            database = sqlite_file(url if isinstance(url, str) else "sqlite:///duban.db")
            folder = database.parent if database is not None else Path()
            data = {**data, "data_dir": folder / "duban-data"}
        return data

    @field_validator("deadline_reminder_days")
    @classmethod
    def _reminder_days(cls, value: str) -> str:
        days = [part.strip() for part in value.split(",") if part.strip()]
        if not days or not all(d.isdigit() and 0 < int(d) <= 60 for d in days):
            raise ValueError("a comma-separated list of working days before a deadline, e.g. 7,3,1")
        return ",".join(days)

    @property
    def reminder_days(self) -> list[int]:
        """Working days before a deadline that a reminder goes out, largest first."""
        return sorted((int(d) for d in self.deadline_reminder_days.split(",")), reverse=True)

    @cached_property
    def tz(self) -> ZoneInfo:
        """The plan's time zone."""
        return ZoneInfo(self.timezone)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a sqlite:///PATH database URL (None for another database or in memory)."""
    if not database_url.startswith("sqlite:///"):
        return None
    path = database_url[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
