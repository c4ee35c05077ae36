"""The chat's wording of messages that the CLI words for a terminal.

Some refusals come from services that the chat and the CLI share (no plan yet, an unknown
item, an unknown contact). On the CLI they point at a `duban ...` command; a person in chat
cannot run one, so there they say what to do in chat instead. Such a message has a chat
variant in the catalogue, `in_chat.<key>`, and the chat says that one.
"""

from __future__ import annotations

from bot.i18n import DEFAULT_LOCALE, UserError, catalog_keys

CHAT_VARIANT = "in_chat."


def chat_key(key: str) -> str:
    """The catalogue key the chat says for a message key: its chat variant when it has one."""
    variant = CHAT_VARIANT + key
    return variant if variant in catalog_keys(DEFAULT_LOCALE) else key


def for_chat(error: UserError) -> UserError:
    """The refusal as the chat words it (the same error when it has no chat variant)."""
    key = chat_key(error.key)
    return error if key == error.key else UserError(key, **error.params)
