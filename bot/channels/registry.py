"""The channel plug-ins Duban knows, by name (each package's `SPEC`), and which are configured.

Adding a channel: its package under `bot/channels/` (found here by its `SPEC`), its settings
in bot/settings.py and .env.example, its set-up in the README.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from bot.channels.spec import Channel, ChannelDeps, ChannelSpec, GroupSender, Limits

if TYPE_CHECKING:
    from bot.settings import Settings


def packages() -> list[str]:
    """The channel packages under bot/channels/, by name."""
    import bot.channels

    return sorted(info.name for info in pkgutil.iter_modules(bot.channels.__path__) if info.ispkg)


def _console_build(deps: ChannelDeps) -> Channel:
    raise RuntimeError("the console channel is driven by `duban chat` and `duban demo`")


# The offline console (`duban chat`, `duban demo`): people are known by name.
CONSOLE = ChannelSpec(
    name="console",
    markup="text",
    start="local",
    limits=Limits(text=100_000),
    settings=(),
    build=_console_build,
    by_name=True,
    priority=90,
)


@cache
def specs() -> dict[str, ChannelSpec]:
    """Every known channel by name (the console last)."""
    found: dict[str, ChannelSpec] = {}
    for package in packages():
        module = importlib.import_module(f"bot.channels.{package}")
        spec: ChannelSpec | None = getattr(module, "SPEC", None)
        if spec is None:
            if getattr(module, "__file__", None) is None:
                continue  # a folder without __init__.py yet: no channel
            raise RuntimeError(f"bot.channels.{package} has no SPEC")
        found[spec.name] = spec
    found[CONSOLE.name] = CONSOLE
    return found


def spec_of(platform: str) -> ChannelSpec | None:
    """The spec of a channel by name, or None for a name no channel has."""
    return specs().get(platform)


def markup_of(platform: str) -> str:
    """How messages are written for a channel (text for one not known)."""
    found = specs().get(platform)
    return found.markup if found is not None else "text"


def account_id(platform: str, value: str) -> str | None:
    """A platform account id normalised for storing, or None when it is not valid there."""
    found = specs().get(platform)
    if found is None or found.by_name:
        return None
    return found.account(value)


def missing_settings(spec: ChannelSpec, settings: Settings) -> list[str]:
    """The channel's settings still unset, as environment variable names."""
    return [key.upper() for key in spec.settings if getattr(settings, key) is None]


def configured(settings: Settings) -> list[ChannelSpec]:
    """The channels whose settings are all given (UserError for a half-configured one, and
    for settings a channel's own check refuses)."""
    from bot.i18n import UserError

    found = []
    for spec in specs().values():
        if not spec.settings:
            continue
        missing = missing_settings(spec, settings)
        if len(missing) == len(spec.settings):
            continue
        if missing:
            raise UserError(
                "run.channel_incomplete",
                channel={"key": f"channel.{spec.name}.label"},
                missing=", ".join(missing),
            )
        if spec.check is not None:
            spec.check(settings)
        found.append(spec)
    return found


def groups(settings: Settings) -> list[GroupSender]:
    """The group robots whose settings are given (whether or not their channel runs)."""
    robots = []
    for spec in specs().values():
        robot = spec.group(settings) if spec.group is not None else None
        if robot is not None:
            robots.append(robot)
    return robots


def by_priority(platforms: set[str]) -> list[str]:
    """Running platforms, the one private notices prefer first."""
    table = specs()
    return sorted(platforms, key=lambda name: (table[name].priority if name in table else 99, name))
