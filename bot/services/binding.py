"""Binding a chat account to a contact with a one-time invite code, with a lockout.

An invite is issued on purpose, for one contact: when its contact is already bound to
another account on the same platform (a new phone, a new account), the binding moves to the
account that used the code. The old account becomes a stranger at once, so a move is never
silent: it is written to the audit log and every admin is told through the outbox (a leaked
code is then seen and answered with a new invite), and the person is told on the new
account that the old one no longer works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.models import BindAttempt, Contact, Invite, Role
from bot.services import audit
from bot.services.contacts import hash_code
from bot.services.notices import fresh_key, queue_notice

MAX_FAILURES = 5
LOCKOUT = timedelta(hours=1)


@dataclass
class BindResult:
    """The outcome of a /start CODE: the contact bound, or why not."""

    contact: Contact | None = None
    # catalog key: bind.bad_code | bind.locked | bind.account_taken | bind.inactive
    problem: str | None = None
    failures_left: int = 0
    locked_minutes: int = 0
    moved: bool = False  # the contact's earlier account on this platform was let go


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
    hour lock the account out until an hour after the fifth. A good code for a deactivated
    contact binds nothing and stays unused; one for a contact bound to another account on
    this platform moves the binding here and tells the admins.
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
    if not contact.active:
        return BindResult(problem="bind.inactive")
    previous: str | None = None
    if platform == "telegram":
        other = session.exec(
            select(Contact).where(Contact.telegram_id == int(sender_id), Contact.id != contact.id)
        ).first()
        if other is not None:
            return BindResult(problem="bind.account_taken")
        previous = None if contact.telegram_id is None else str(contact.telegram_id)
        contact.telegram_id = int(sender_id)
    elif platform == "wecom":
        other = session.exec(
            select(Contact).where(Contact.wecom_userid == sender_id, Contact.id != contact.id)
        ).first()
        if other is not None:
            return BindResult(problem="bind.account_taken")
        previous = contact.wecom_userid
        contact.wecom_userid = sender_id
    invite.used_at = now
    session.add(BindAttempt(platform=platform, sender_id=sender_id, ok=True, at=now))
    actor = audit.actor_of(contact.id)
    if previous is None or previous == sender_id:
        audit.record(session, actor=actor, action="contact.bind", platform=platform)
        return BindResult(contact=contact)
    audit.record(
        session,
        actor=actor,
        action="contact.rebind",
        name=contact.name,
        platform=platform,
        previous=previous,
        account=sender_id,
    )
    _tell_admins_of_move(session, contact, platform, now=now)
    return BindResult(contact=contact, moved=True)


def _tell_admins_of_move(
    session: Session, contact: Contact, platform: str, *, now: datetime
) -> None:
    """Queue a notice to every active admin that the contact's account on `platform` changed."""
    admins = session.exec(
        select(Contact)
        .where(Contact.role == Role.admin, col(Contact.active).is_(True))
        .order_by(col(Contact.id))
    )
    for admin in admins:
        queue_notice(
            session,
            admin,
            f"bind.moved_notice.{platform}",
            key=fresh_key("rebind", contact.id, admin.id),
            now=now,
            name=contact.name,
            unit=contact.unit or "-",
        )
