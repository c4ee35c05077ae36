"""Binding a chat account to a contact with a one-time invite code, with a lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.models import BindAttempt, Contact, Invite
from bot.services import audit
from bot.services.contacts import hash_code

MAX_FAILURES = 5
LOCKOUT = timedelta(hours=1)


@dataclass
class BindResult:
    """The outcome of a /start CODE: the contact bound, or why not."""

    contact: Contact | None = None
    problem: str | None = None  # catalog key: bind.bad_code | bind.locked | bind.account_taken
    failures_left: int = 0
    locked_minutes: int = 0


def _failures(session: Session, platform: str, sender_id: str, since: datetime) -> list[datetime]:
    return list(
        session.exec(
            select(BindAttempt.at)
            .where(
                BindAttempt.platform == platform,
                BindAttempt.sender_id == sender_id,
                BindAttempt.ok == False,  # noqa: E712
                col(BindAttempt.at) > since,
            )
            .order_by(col(BindAttempt.at))
        )
    )


def bind_account(
    session: Session, *, platform: str, sender_id: str, code: str, now: datetime
) -> BindResult:
    """Bind the sender's account to the contact the code was issued for.

    Failed attempts are written down (the caller commits them): five wrong codes within an
    hour lock the account out until an hour after the fifth.
    """
    failures = _failures(session, platform, sender_id, now - LOCKOUT)
    if len(failures) >= MAX_FAILURES:
        unlock = failures[MAX_FAILURES - 1] + LOCKOUT
        minutes = max(1, int((unlock - now).total_seconds() // 60) + 1)
        return BindResult(problem="bind.locked", locked_minutes=minutes)
    invite = session.exec(select(Invite).where(Invite.code_hash == hash_code(code))).first()
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        session.add(BindAttempt(platform=platform, sender_id=sender_id, ok=False, at=now))
        left = MAX_FAILURES - len(failures) - 1
        if left <= 0:
            return BindResult(
                problem="bind.locked", locked_minutes=int(LOCKOUT.total_seconds() // 60)
            )
        return BindResult(problem="bind.bad_code", failures_left=left)
    contact = session.get(Contact, invite.contact_id)
    assert contact is not None
    if platform == "telegram":
        other = session.exec(
            select(Contact).where(Contact.telegram_id == int(sender_id), Contact.id != contact.id)
        ).first()
        if other is not None:
            return BindResult(problem="bind.account_taken")
        contact.telegram_id = int(sender_id)
    elif platform == "wecom":
        other = session.exec(
            select(Contact).where(Contact.wecom_userid == sender_id, Contact.id != contact.id)
        ).first()
        if other is not None:
            return BindResult(problem="bind.account_taken")
        contact.wecom_userid = sender_id
    invite.used_at = now
    session.add(BindAttempt(platform=platform, sender_id=sender_id, ok=True, at=now))
    audit.record(
        session, actor=audit.actor_of(contact.id), action="contact.bind", platform=platform
    )
    return BindResult(contact=contact)
