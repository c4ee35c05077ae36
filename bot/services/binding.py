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

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from bot.channels import registry
from bot.models import BindAttempt, Contact, Invite, Role
from bot.services import accounts, audit
from bot.services.contacts import hash_code
from bot.services.notices import fresh_key, queue_notice

MAX_FAILURES = 5
LOCKOUT = timedelta(hours=1)
_CLAIM = (
    sa.update(Invite)
    .where(col(Invite.id) == bindparam("invite_id"), col(Invite.used_at).is_(None))
    .values(used_at=bindparam("now"))
)


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
        return _wrong_code(session, platform, sender_id, failures, now)
    contact = session.get(Contact, invite.contact_id)
    assert contact is not None
    if not contact.active:
        return BindResult(problem="bind.inactive")
    # The console knows people by name: no account to store (nor any other platform's).
    account = registry.account_id(platform, sender_id)
    previous: str | None = None
    if account is not None:
        taken = accounts.holder(session, platform, account)
        if taken is not None and taken.id != contact.id:
            return BindResult(problem="bind.account_taken")
        assert contact.id is not None
        current = accounts.account_of(session, contact.id, platform)
        previous = None if current is None else current.account_id
    if not _claim(session, invite, now):  # another account used it a moment ago
        return _wrong_code(session, platform, sender_id, failures, now)
    if account is not None:
        accounts.set_account(session, contact, platform, account)
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


def _wrong_code(
    session: Session, platform: str, sender_id: str, failures: list[datetime], now: datetime
) -> BindResult:
    """Write down a failed attempt; the answer says how many are left, or that it is locked."""
    session.add(BindAttempt(platform=platform, sender_id=sender_id, ok=False, at=now))
    left = MAX_FAILURES - len(failures) - 1
    if left <= 0:
        return BindResult(problem="bind.locked", locked_minutes=int(LOCKOUT.total_seconds() // 60))
    return BindResult(problem="bind.bad_code", failures_left=left)


def _claim(session: Session, invite: Invite, now: datetime) -> bool:
    """Mark the invite used, unless another transaction did first: one conditional UPDATE, so
    on PostgreSQL a second account racing with the same code waits for the first, then finds
    the code used (SQLite has one writer: no race)."""
    claimed = session.connection().execute(_CLAIM, {"invite_id": invite.id, "now": now}).rowcount
    return claimed == 1


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
            "bind.moved_notice",
            key=fresh_key("rebind", contact.id, admin.id),
            now=now,
            name=contact.name,
            unit=contact.unit or "-",
            platform=accounts.label(platform),
        )
