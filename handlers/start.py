"""Binding a chat account (/start CODE), help, and the welcome when a chat is opened."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.services.binding import bind_account
from bot.templating import render


def start(ctx: ChatContext) -> None:
    """Binds the sender's account with an invite code, or says how to get one."""
    code = ctx.args.strip()
    if ctx.contact is not None:
        ctx.say("bind.already", name=ctx.contact.name)
        return
    if not code:
        ctx.say("chat.unknown_sender")
        return
    result = bind_account(
        ctx.session,
        platform=ctx.event.platform,
        sender_id=ctx.event.sender_id,
        code=code,
        now=ctx.now,
    )
    if result.contact is None:
        ctx.say(
            result.problem or "bind.bad_code",
            left=result.failures_left,
            minutes=result.locked_minutes,
        )
        return
    ctx.contact = result.contact
    done = ctx.t("bind.done", name=result.contact.name, unit=result.contact.unit or "-")
    if result.moved:  # the old account is a stranger now: say so where the person is
        done += "\n" + ctx.t("bind.moved")
    ctx.reply(done)
    help_(ctx)


def help_(ctx: ChatContext) -> None:
    """Lists what the sender's role may do, with the reply forms."""
    commands = ctx.router.commands_for(ctx.role)
    ctx.reply(
        render(
            "help",
            ctx.t.locale,
            role=ctx.role.value if ctx.role else None,
            commands=[c.name for c in commands],
        )
    )


def enter(ctx: ChatContext) -> None:
    """Welcomes a sender who opened the chat: a short word on what they may do."""
    if ctx.contact is None:
        ctx.say("chat.unknown_sender")
        return
    ctx.say("chat.welcome", name=ctx.contact.name)
    help_(ctx)
