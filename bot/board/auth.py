"""Signing in to the board: one-time links given in chat, and the sessions they start.

A token is 32 random bytes, URL-safe (43 characters). Only its SHA-256 is stored, so a copy
of the database signs nobody in; a token is looked up by that hash, and the stored hash is
compared with `hmac.compare_digest`. A link is valid for 15 minutes and spent by one atomic
UPDATE (`used_at IS NULL AND expires_at > now`, one row or none): two uses at once give one
session. A session lives 12 hours in an HttpOnly cookie. No token is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col

from bot.models import Contact, Role, WebToken

LINK = "link"
SESSION = "session"
LINK_TTL = timedelta(minutes=15)
SESSION_TTL = timedelta(hours=12)
PRUNE_AFTER = timedelta(days=1)  # spent and expired tokens are deleted a day after they end
COOKIE = "duban_board"
# secrets.token_urlsafe(32): anything else is refused before the database is asked.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

_TOKEN: sa.Table = WebToken.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the board: leaders and admins see everything, officials their items."""

    contact_id: int
    name: str
    role: Role

    @property
    def sees_all(self) -> bool:
        """Whether the viewer sees every item (a leader or an admin)."""
        return self.role in (Role.leader, Role.admin)


class Started(NamedTuple):
    """A session a link started: the cookie's token, and whose it is."""

    token: str
    contact_id: int


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str | None) -> bool:
    """Whether a string has the shape of a token (garbage never reaches the database)."""
    return token is not None and _TOKEN_SHAPE.fullmatch(token) is not None


def link_url(base_url: str, token: str) -> str:
    """The sign-in address of a link token under WEB_BASE_URL."""
    return f"{base_url.rstrip('/')}/board/in/{token}"


def create_link(session: Session, contact_id: int, *, now: datetime) -> str:
    """Store a one-time sign-in link for a contact (valid 15 minutes); returns its token."""
    prune(session, now=now)
    token = new_token()
    session.add(
        WebToken(
            token_hash=token_hash(token),
            kind=LINK,
            contact_id=contact_id,
            expires_at=now + LINK_TTL,
            created_at=now,
        )
    )
    session.flush()
    return token


def prune(session: Session, *, now: datetime) -> int:
    """Delete tokens that ended (expired, spent or signed out) more than a day ago."""
    before = now - PRUNE_AFTER
    result = session.connection().execute(
        sa.delete(_TOKEN).where(
            sa.or_(_TOKEN.c.expires_at < before, _TOKEN.c.used_at < before),
        )
    )
    return int(result.rowcount or 0)


def _viewer(session: Session, kind: str, hashed: str, now: datetime) -> Viewer | None:
    """The active contact behind a live (unspent, unexpired) token of a kind, or None."""
    row = session.execute(
        sa.select(_TOKEN.c.token_hash, col(Contact.id), col(Contact.name), col(Contact.role))
        .join(Contact, col(Contact.id) == _TOKEN.c.contact_id)
        .where(
            _TOKEN.c.token_hash == hashed,
            _TOKEN.c.kind == kind,
            _TOKEN.c.used_at.is_(None),
            _TOKEN.c.expires_at > now,
            col(Contact.active).is_(True),
        )
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, hashed):
        return None
    return Viewer(row.id, row.name, Role(row.role))


def link_holder(session: Session, token: str | None, *, now: datetime) -> Viewer | None:
    """Whom a link would sign in, without spending it (None: unknown, spent or expired)."""
    if not well_formed(token):
        return None
    assert token is not None
    return _viewer(session, LINK, token_hash(token), now)


def consume_link(session: Session, token: str | None, *, now: datetime) -> Started | None:
    """Spend a link and start a session for its contact, or None when the link is unknown,
    spent, expired or its contact inactive. The caller commits."""
    if not well_formed(token):
        return None
    assert token is not None
    hashed = token_hash(token)
    spent = session.connection().execute(
        sa.update(_TOKEN)
        .where(
            _TOKEN.c.token_hash == hashed,
            _TOKEN.c.kind == LINK,
            _TOKEN.c.used_at.is_(None),
            _TOKEN.c.expires_at > now,
        )
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        return None
    row = session.execute(
        sa.select(_TOKEN.c.token_hash, _TOKEN.c.contact_id)
        .join(Contact, col(Contact.id) == _TOKEN.c.contact_id)
        .where(_TOKEN.c.token_hash == hashed, col(Contact.active).is_(True))
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, hashed):
        return None  # the contact was deactivated: the link is spent all the same
    started = new_token()
    session.add(
        WebToken(
            token_hash=token_hash(started),
            kind=SESSION,
            contact_id=row.contact_id,
            expires_at=now + SESSION_TTL,
            created_at=now,
        )
    )
    session.flush()
    return Started(started, row.contact_id)


def signed_in(session: Session, token: str | None, *, now: datetime) -> Viewer | None:
    """The viewer a session cookie stands for, or None (no, garbage, expired, signed out)."""
    if not well_formed(token):
        return None
    assert token is not None
    return _viewer(session, SESSION, token_hash(token), now)


def sign_out(session: Session, token: str | None, *, now: datetime) -> None:
    """End a session (the caller commits)."""
    if not well_formed(token):
        return
    assert token is not None
    session.connection().execute(
        sa.update(_TOKEN)
        .where(
            _TOKEN.c.token_hash == token_hash(token),
            _TOKEN.c.kind == SESSION,
            _TOKEN.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
