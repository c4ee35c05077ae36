"""WeCom (企业微信): the self-built app's encrypted callback (wechatpy crypto) for what people
send, its message API for what Duban sends, and the group robot for the leaders' group. The
channel is in `channel.py`, the robot in `group.py` (imported only when they are used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.channels.spec import Channel, ChannelDeps, ChannelSpec, GroupSender, Limits

if TYPE_CHECKING:
    from bot.settings import Settings

NAME = "wecom"


def build(deps: ChannelDeps) -> Channel:
    """The running channel (imports wechatpy)."""
    from bot.channels.wecom.channel import WeComChannel

    return WeComChannel(deps.settings, deps.core)


def group(settings: Settings) -> GroupSender | None:
    """The group robot, when WECOM_GROUP_WEBHOOK_KEY is set."""
    if settings.wecom_group_webhook_key is None:
        return None
    from bot.channels.wecom.group import GroupRobot

    return GroupRobot(
        settings.wecom_api_base_url, settings.wecom_group_webhook_key.get_secret_value()
    )


SPEC = ChannelSpec(
    name=NAME,
    markup="markdown",
    start="webhook",
    limits=Limits(text=2048, unit="bytes", per_member_per_minute=29, buttons="card"),
    settings=("wecom_corp_id", "wecom_agent_id", "wecom_secret", "wecom_token", "wecom_aes_key"),
    build=build,
    admin_binds=True,
    priority=10,
    group=group,
)
