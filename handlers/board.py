"""`/board` for leaders and admins: a one-time sign-in link to the leaders' board."""

from __future__ import annotations

from bot.board.auth import LINK_TTL, create_link, link_url
from bot.chat import ChatContext


def board(ctx: ChatContext) -> None:
    """Sends a link that signs the sender in to the board (15 minutes, once)."""
    base = ctx.settings.web_base_url
    if base is None:
        ctx.say("board.not_configured")
        return
    assert ctx.contact is not None and ctx.contact.id is not None
    token = create_link(ctx.session, ctx.contact.id, now=ctx.now)
    ctx.say("board.link", url=link_url(base, token), minutes=int(LINK_TTL.total_seconds() // 60))
