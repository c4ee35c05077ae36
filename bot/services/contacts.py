"""Contacts: the people Duban talks to, and their one-time invite codes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.models import Assignment, Contact, Invite, Role, utcnow
from bot.services import accounts as account_store
from bot.services import audit

# No 0/O, 1/I/L: codes are read aloud and typed by hand.
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_LENGTH = 8
MAX_NAME = 64


def hash_code(code: str) -> str:
    """The stored form of an invite code (codes are kept only as hashes)."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def parse_role(value: str) -> Role:
    """A role from its name (admin, leader, official)."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise UserError("contact.bad_role", role=value) from None


def find_contact(session: Session, name: str) -> Contact:
    """The contact with exactly this name."""
    contact = session.exec(select(Contact).where(Contact.name == name.strip())).first()
    if contact is None:
        raise UserError("contact.unknown", name=name)
    return contact


def add_contact(
    session: Session,
    *,
    name: str,
    unit: str,
    role: Role,
    accounts: dict[str, str] | None = None,
    actor: str,
) -> Contact:
    """Register a contact, with their platform accounts ({platform: account id}, as typed);
    names are unique, and an account belongs to one contact."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise UserError("contact.bad_name", max=MAX_NAME)
    if session.exec(select(Contact).where(Contact.name == name)).first():
        raise UserError("contact.exists", name=name)
    wanted = {
        platform: account_store.normalise(platform, value)
        for platform, value in (accounts or {}).items()
    }
    for platform, account_id in wanted.items():
        other = account_store.holder(session, platform, account_id)
        if other is not None:
            raise UserError(
                "contact.account_taken",
                platform=account_store.label(platform),
                value=account_id,
                name=other.name,
            )
    contact = Contact(name=name, unit=unit.strip(), role=role)
    session.add(contact)
    session.flush()
    for platform, account_id in wanted.items():
        account_store.set_account(session, contact, platform, account_id)
    audit.record(
        session, actor=actor, action="contact.add", name=name, unit=contact.unit, role=role.value
    )
    return contact


def parse_accounts(values: list[str]) -> dict[str, str]:
    """Accounts given as PLATFORM:ID (the CLI's --account), by platform."""
    found: dict[str, str] = {}
    for value in values:
        platform, sep, account_id = value.partition(":")
        if not sep or not account_id.strip():
            raise UserError("account.bad_pair", value=value, sample=account_store.sample())
        found[platform.strip().lower()] = account_id.strip()
    return found


def list_contacts(session: Session) -> list[tuple[Contact, int]]:
    """Every contact with the number of items assigned to them."""
    contacts = list(session.exec(select(Contact).order_by(col(Contact.unit), col(Contact.name))))
    counts: dict[int, int] = {}
    for contact_id in session.exec(select(Assignment.contact_id)):
        counts[contact_id] = counts.get(contact_id, 0) + 1
    return [(c, counts.get(c.id or 0, 0)) for c in contacts]


def create_invite(
    session: Session, contact: Contact, *, valid_days: int, actor: str, now: datetime | None = None
) -> tuple[str, Invite]:
    """Issue a one-time code for a contact; earlier unused codes stop working."""
    now = now or utcnow()
    for old in session.exec(
        select(Invite).where(Invite.contact_id == contact.id, col(Invite.used_at).is_(None))
    ):
        old.used_at = now  # superseded: only the newest code works
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    assert contact.id is not None
    invite = Invite(
        contact_id=contact.id,
        code_hash=hash_code(code),
        expires_at=now + timedelta(days=valid_days),
    )
    session.add(invite)
    session.flush()
    audit.record(session, actor=actor, action="contact.invite", name=contact.name)
    return code, invite
