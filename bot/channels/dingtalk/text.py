"""How Duban's text is written for DingTalk (shared by the channel and the group robot)."""

from __future__ import annotations

import re

MAX_TITLE = 30  # characters of a markdown message's title (the notification's preview)
DEFAULT_TITLE = "督办"
_MARKUP = re.compile(r"[#*>`_~\[\]]")
_LINE_BREAK = re.compile(r"(?<=\S)\n(?=\S)")


def clip(text: str, limit: int) -> str:
    """Text shortened to limit characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_title(text: str) -> str:
    """The title of a markdown message: its first line without markup, shortened."""
    for line in text.split("\n"):
        plain = _MARKUP.sub("", line).strip(" -")
        if plain:
            return clip(plain, MAX_TITLE)
    return DEFAULT_TITLE


def dingtalk_markdown(text: str) -> str:
    """Markdown with its line breaks kept: DingTalk joins lines unless a break is marked
    (two spaces before the line break)."""
    return _LINE_BREAK.sub("  \n", text)
