"""What a channel plug-in declares: one `ChannelSpec` per package under `bot/channels/`.

A channel package (`bot/channels/<name>/`) exposes `SPEC` from its `__init__.py`, which must
import nothing heavy (no platform SDK): the CLI and the core read specs without starting a
channel. `SPEC.build(deps)` imports the SDK and returns the running `Channel`.

The core, the handlers, the scheduler and the templates know channels only through these
specs (`bot/channels/registry.py`): their name, markup, limits, how an account id looks,
whether an admin may bind one by id, and their group robot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from starlette.routing import BaseRoute

    from bot.chat import ChatCore
    from bot.events import Messenger
    from bot.router import Router
    from bot.settings import Settings

Markup = Literal["text", "html", "markdown"]


@dataclass(frozen=True)
class Limits:
    """A platform's limits on what the bot sends (the channel enforces them; shown in docs)."""

    text: int  # the longest message, in `unit`
    unit: Literal["chars", "utf16", "bytes"] = "chars"
    per_member_per_minute: int | None = None  # messages to one person a minute
    overall_per_second: float | None = None  # messages a second in all
    buttons: Literal["inline", "card", "none"] = "none"  # how choices are offered


@dataclass(frozen=True)
class ChannelDeps:
    """What a channel is built with."""

    settings: Settings
    core: ChatCore
    engine: Engine
    router: Router


class Channel(Protocol):
    """A running chat platform connection."""

    platform: str

    @property
    def messenger(self) -> Messenger:
        """Sends for the core and the dispatcher (may also be a FileFetcher)."""
        ...

    async def start(self) -> None:
        """Hand over what the inbox holds unhandled, then begin receiving."""

    async def stop(self) -> None:
        """Stop receiving, finish what is in flight, disconnect."""

    def routes(self) -> list[BaseRoute]:
        """Web routes this channel needs (webhooks, callbacks); [] for none."""
        ...


class GroupSender(Protocol):
    """A send-only group robot (the leaders' group gets the digest)."""

    async def send_markdown(self, text: str) -> int:
        """Send markdown (split to the robot's limit); returns the number of messages."""
        ...


def plain_account(value: str) -> str | None:
    """An account id as most platforms have it: a non-empty string, no spaces, at most 64
    characters; None when it is not one."""
    value = value.strip()
    if not value or len(value) > 64 or any(c.isspace() for c in value):
        return None
    return value


@dataclass(frozen=True)
class ChannelSpec:
    """One chat platform, as the rest of Duban sees it."""

    name: str  # stored with accounts, inbox and outbox rows: never changes
    markup: Markup  # how digests and notices are written for it
    start: Literal["polling", "webhook", "stream", "local"]  # how it receives
    limits: Limits
    # The settings it needs (field names of bot.settings.Settings): all set means configured,
    # some set is an error naming the missing ones.
    settings: tuple[str, ...]
    build: Callable[[ChannelDeps], Channel]  # imports the platform SDK only when called
    # A platform account id as typed or received, normalised for storing; None when invalid.
    account: Callable[[str], str | None] = plain_account
    # An account id as people write it, for examples in messages (e.g. "zhangsan").
    example: str = "zhangsan"
    # Admins may bind an account by its id (`/<name> 张三 ID`, `duban contact add --<name> ID`);
    # False where ids cannot be known beforehand (people bind with an invite code).
    admin_binds: bool = False
    # People are known by their contact name, not an account (the offline console).
    by_name: bool = False
    # Where private notices go when a person is reachable on several: the lowest first.
    priority: int = 50
    # The leaders' group robot on this platform, when its settings are given (else None).
    group: Callable[[Settings], GroupSender | None] | None = None
    # Extra checks of its settings (raise bot.i18n.UserError), after `settings` are all set.
    check: Callable[[Settings], None] | None = None
    # Catalog keys: `channel.<name>.label` (its display name) and
    # `channel.<name>.bad_account` (an invalid account id, with an example) live in the
    # package's locales/<locale>.yaml.
