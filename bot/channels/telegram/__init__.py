"""Telegram: long polling (or a webhook) through the Bot API, with python-telegram-bot's
ExtBot for sending. The channel itself is in `channel.py` (imported only when it starts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.channels.spec import Channel, ChannelDeps, ChannelSpec, Limits

if TYPE_CHECKING:
    from bot.settings import Settings

NAME = "telegram"


def account(value: str) -> str | None:
    """A Telegram user id: a positive whole number."""
    value = value.strip()
    if not value.isdigit() or int(value) <= 0 or len(value) > 20:
        return None
    return str(int(value))


def build(deps: ChannelDeps) -> Channel:
    """The running channel (imports python-telegram-bot, without the extras it would load only
    because they are installed: see bot.optional_imports)."""
    from bot.optional_imports import TELEGRAM_EXTRAS, skipping

    with skipping(*TELEGRAM_EXTRAS):
        import telegram  # noqa: F401  # PTB's first import, here: without the extras
    from bot.channels.telegram.channel import TelegramChannel, prepare_runtime

    prepare_runtime()
    return TelegramChannel(deps.settings, deps.core, deps.engine, deps.router)


def check(settings: Settings) -> None:
    """A webhook needs its secret."""
    from bot.i18n import UserError

    if settings.telegram_webhook_url and settings.telegram_webhook_secret is None:
        raise UserError("channel.telegram.webhook_secret")


SPEC = ChannelSpec(
    name=NAME,
    markup="html",
    start="polling",
    limits=Limits(
        text=4096, unit="utf16", per_member_per_minute=20, overall_per_second=30, buttons="inline"
    ),
    settings=("telegram_bot_token",),
    build=build,
    account=account,
    example="123456789",
    admin_binds=False,
    priority=20,
    check=check,
)
