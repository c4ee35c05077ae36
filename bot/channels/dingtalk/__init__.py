"""DingTalk (钉钉): an internal app's robot over Stream mode (the official SDK
`dingtalk-stream`, a long connection: no public URL) for what people send and click, the
OpenAPI for what Duban sends, and the group custom robot (加签) for the leaders' group. The
channel is in `channel.py`, the robot in `group.py` (imported only when they are used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.channels.spec import Channel, ChannelDeps, ChannelSpec, GroupSender, Limits

if TYPE_CHECKING:
    from bot.settings import Settings

NAME = "dingtalk"


def build(deps: ChannelDeps) -> Channel:
    """The running channel (imports dingtalk-stream and httpx)."""
    from bot.channels.dingtalk.channel import DingTalkChannel

    return DingTalkChannel(deps.settings, deps.core)


def group(settings: Settings) -> GroupSender | None:
    """The group robot, when DINGTALK_GROUP_ACCESS_TOKEN is set (signed with
    DINGTALK_GROUP_SECRET when that is set too)."""
    check(settings)  # a secret without its token is an error even when the app is not set up
    if settings.dingtalk_group_access_token is None:
        return None
    from bot.channels.dingtalk.group import GroupRobot

    secret = settings.dingtalk_group_secret
    return GroupRobot(
        settings.dingtalk_oapi_base_url,
        settings.dingtalk_group_access_token.get_secret_value(),
        secret.get_secret_value() if secret is not None else None,
    )


def check(settings: Settings) -> None:
    """A group secret needs its robot's access token."""
    from bot.i18n import UserError

    if settings.dingtalk_group_secret is not None and settings.dingtalk_group_access_token is None:
        raise UserError("channel.dingtalk.group_incomplete")


SPEC = ChannelSpec(
    name=NAME,
    markup="markdown",
    start="stream",
    limits=Limits(text=5000, unit="chars", buttons="card"),
    settings=("dingtalk_client_id", "dingtalk_client_secret"),
    build=build,
    example="zhangsan01",
    admin_binds=True,
    priority=30,
    group=group,
    check=check,
)
