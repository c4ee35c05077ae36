"""The router: explicit, ordered registration of commands, buttons and plain text."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.events import EventKind, IncomingMessage
from bot.models import Role

# A handler takes the chat core's context (bot.chat.ChatContext); the router only routes, so
# it does not import the core that uses it.
Handler = Callable[[Any], None]

EVERYONE = frozenset(Role)
LEADERS = frozenset({Role.leader, Role.admin})
ADMINS = frozenset({Role.admin})


@dataclass(frozen=True)
class Route:
    """One registered handler and who may use it."""

    name: str
    handler: Handler
    roles: frozenset[Role] = EVERYONE
    unbound: bool = False  # also for senders who are not contacts yet (/start CODE)
    menu: bool = True  # listed in /help and the command menu


@dataclass(frozen=True)
class Match:
    """The route an event goes to, with the command's arguments."""

    route: Route
    args: str


class Router:
    """Routes an IncomingMessage to its handler; first registration wins."""

    def __init__(self) -> None:
        self._commands: dict[str, Route] = {}
        self._buttons: list[tuple[str, Route]] = []
        self._text: Route | None = None
        self._enter: Route | None = None
        self._kinds: dict[EventKind, Route] = {}  # files and voice messages

    def command(
        self,
        name: str,
        handler: Handler,
        *,
        roles: Iterable[Role] = EVERYONE,
        unbound: bool = False,
        menu: bool = True,
    ) -> None:
        """Register /name."""
        if name in self._commands:
            raise ValueError(f"command /{name} registered twice")
        self._commands[name] = Route(name, handler, frozenset(roles), unbound, menu)

    def button(self, prefix: str, handler: Handler, *, roles: Iterable[Role] = EVERYONE) -> None:
        """Register a handler for button data starting with `prefix:`."""
        self._buttons.append((prefix, Route(prefix, handler, frozenset(roles), menu=False)))

    def text(self, handler: Handler, *, roles: Iterable[Role] = EVERYONE) -> None:
        """Register the handler for plain text that is not a command."""
        self._text = Route("text", handler, frozenset(roles), menu=False)

    def enter(self, handler: Handler) -> None:
        """Register the handler for a user opening the chat (WeCom enter_agent)."""
        self._enter = Route("enter", handler, EVERYONE, unbound=True, menu=False)

    def kind(self, kind: EventKind, handler: Handler, *, roles: Iterable[Role] = EVERYONE) -> None:
        """Register the handler for every event of a kind (a file, a voice message); its
        arguments are the event's text (a caption, what speech recognition heard)."""
        self._kinds[kind] = Route(kind.value, handler, frozenset(roles), menu=False)

    def match(self, event: IncomingMessage) -> Match | None:
        """The route for an event, or None when nothing is registered for it."""
        if event.kind == EventKind.button:  # a click without data is no text either
            data = event.button_data or ""
            prefix = data.split(":", 1)[0]
            for name, route in self._buttons:
                if name == prefix:
                    return Match(route, data[len(prefix) + 1 :])
            return None
        if event.kind == EventKind.enter:
            return Match(self._enter, "") if self._enter else None
        if event.kind in (EventKind.file, EventKind.voice):
            by_kind = self._kinds.get(event.kind)
            return Match(by_kind, event.text.strip()) if by_kind else None
        text = event.text.strip()
        if text.startswith("/"):
            head, _, rest = text[1:].partition(" ")
            name = head.split("@", 1)[0].lower()
            command = self._commands.get(name)
            return Match(command, rest.strip()) if command else None
        return Match(self._text, text) if self._text else None

    def is_command(self, event: IncomingMessage) -> bool:
        """Whether the event is a /command (known or not)."""
        return event.kind == EventKind.text and event.text.strip().startswith("/")

    def commands_for(self, role: Role | None) -> list[Route]:
        """The commands a role may use, in registration order (None: an unbound sender)."""
        return [
            r
            for r in self._commands.values()
            if r.menu and (r.unbound if role is None else role in r.roles)
        ]
