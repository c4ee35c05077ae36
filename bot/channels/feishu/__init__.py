"""Feishu (飞书) / Lark: a custom app's bot on the long connection (the official SDK
`lark-oapi`, no public URL needed) for what people send and click, the im/v1 API for what
Duban sends, and a group's custom bot for the leaders' group. The channel is in `channel.py`,
the robot in `group.py` (imported only when they are used: the SDK is heavy)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.channels.spec import Channel, ChannelDeps, ChannelSpec, GroupSender, Limits

if TYPE_CHECKING:
    from bot.settings import Settings

NAME = "feishu"
_OPEN_ID = re.compile(r"ou_[A-Za-z0-9_\-]{1,61}")


def account(value: str) -> str | None:
    """A Feishu open_id (ou_ and letters, digits, - or _; at most 64 characters)."""
    value = value.strip()
    return value if _OPEN_ID.fullmatch(value) else None


def build(deps: ChannelDeps) -> Channel:
    """The running channel (the SDK is imported when it starts)."""
    from bot.channels.feishu.channel import FeishuChannel

    return FeishuChannel(deps.settings, deps.core)


def group(settings: Settings) -> GroupSender | None:
    """The group's custom bot, when FEISHU_GROUP_WEBHOOK_TOKEN is set (signed with
    FEISHU_GROUP_SECRET when that is set too)."""
    if settings.feishu_group_webhook_token is None:
        return None
    from bot.channels.feishu.group import FeishuGroupBot

    secret = settings.feishu_group_secret
    return FeishuGroupBot(
        settings.feishu_domain,
        settings.feishu_group_webhook_token.get_secret_value(),
        secret.get_secret_value() if secret is not None else None,
    )


SPEC = ChannelSpec(
    name=NAME,
    markup="markdown",
    start="stream",
    # A part of a message: 12,000 bytes as sent (cards may be 30 KB, text 150 KB); 5 a
    # second to one person, 50 a second in all (Feishu answers 99991400 beyond).
    limits=Limits(
        text=12_000,
        unit="bytes",
        per_member_per_minute=300,
        overall_per_second=50,
        buttons="card",
    ),
    settings=("feishu_app_id", "feishu_app_secret"),
    build=build,
    account=account,
    example="ou_7d8a6e6df7621556ce0d21922b676706",
    admin_binds=True,
    priority=15,
    group=group,
)
