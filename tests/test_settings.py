"""Settings and message catalogs: every key documented, secrets hidden, both locales complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.i18n import LOCALES, Translator, UserError, catalog_keys, placeholders
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = _example_lines()
    keys = {
        line.split("=", 1)[0]: n
        for n, line in enumerate(lines)
        if "=" in line and not line.startswith("#")
    }
    for name in Settings.model_fields:
        key = name.upper()
        assert key in keys, f"{key} missing from .env.example"
        assert lines[keys[key] - 1].startswith("#"), f"{key} has no comment line above it"
    assert set(keys) == {n.upper() for n in Settings.model_fields}


def test_env_example_loads_to_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("\n".join(_example_lines()), encoding="utf-8")
    settings = Settings()
    assert settings.database_url == "sqlite:///duban.db"
    assert settings.timezone == "Asia/Shanghai" and settings.locale == "zh-CN"
    assert settings.telegram_bot_token is None and settings.wecom_agent_id is None


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret")
    monkeypatch.setenv("WECOM_SECRET", "wecom-very-secret")
    settings = Settings()
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123:very-secret"


@pytest.mark.parametrize(("key", "value"), [("LOCALE", "fr"), ("TIMEZONE", "Mars/Olympus")])
def test_bad_settings_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


def test_locales_have_the_same_keys_and_placeholders() -> None:
    zh, en = (catalog_keys(loc) for loc in LOCALES)
    assert zh == en
    for key in zh:
        assert placeholders("zh-CN", key) == placeholders("en", key), key


def test_user_error_renders_per_locale() -> None:
    error = UserError("item.unknown", ref="99")
    assert "99" in error.render(Translator("zh-CN")) and "工作事项" in error.render(
        Translator("zh-CN")
    )
    assert str(error).startswith("There is no work item '99'")


def test_bad_setting_is_one_line_at_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WECOM_AES_KEY", "too-short-secret")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "WECOM_AES_KEY" in result.stderr and "43" in result.stderr
    assert "too-short-secret" not in result.stderr
