"""Platform accounts: which contact an account on a chat platform belongs to.

One row per contact and platform (bot.models.Account); an account id belongs to one contact.
How an id looks is the channel's business (its spec's `account`): this module only stores.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from bot.channels import registry
from bot.i18n import UserError
from bot.models import Account, Contact
from bot.services import audit


def label(platform: str) -> dict[str, str]:
    """The platform's display name, as a message parameter (said in the reader's locale)."""
    return {"key": f"channel.{platform}.label"}


def normalise(platform: str, value: str) -> str:
    """An account id as stored, or a UserError saying how one looks on that platform."""
    spec = registry.spec_of(platform)
    if spec is None or spec.by_name or not spec.settings:
        raise UserError(
            "account.bad_platform", value=platform, known=", ".join(platforms()), sample=sample()
        )
    account = spec.account(value)
    if account is None:
        raise UserError(f"channel.{platform}.bad_account", value=value.strip()[:80])
    return account


def sample() -> str:
    """An example of an account as the CLI takes it (PLATFORM:ID), for messages."""
    specs = [spec for spec in registry.specs().values() if not spec.by_name]
    chosen = next((spec for spec in specs if spec.admin_binds), specs[0])
    return f"{chosen.name}:{chosen.example}"


def platforms() -> list[str]:
    """The platforms accounts can be held on (every channel but the console)."""
    return [name for name, spec in registry.specs().items() if not spec.by_name]


def holder(session: Session, platform: str, account_id: str) -> Contact | None:
    """The contact holding an account, or None."""
    return session.exec(
        select(Contact)
        .join(Account, col(Account.contact_id) == Contact.id)
        .where(Account.platform == platform, Account.account_id == account_id)
    ).first()


def account_of(session: Session, contact_id: int, platform: str) -> Account | None:
    """A contact's account on one platform, or None."""
    return session.exec(
        select(Account).where(Account.contact_id == contact_id, Account.platform == platform)
    ).first()


def accounts_of(session: Session, contact_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The accounts of several contacts: {contact id: {platform: account id}}."""
    ids = list(contact_ids)
    found: dict[int, dict[str, str]] = {}
    if not ids:
        return found
    for row in session.exec(select(Account).where(col(Account.contact_id).in_(ids))):
        found.setdefault(row.contact_id, {})[row.platform] = row.account_id
    return found


def set_account(session: Session, contact: Contact, platform: str, account_id: str) -> str | None:
    """Tie the account to the contact (replacing their earlier one on that platform); returns
    the earlier account id, or None. UserError when another contact holds this account."""
    assert contact.id is not None
    other = holder(session, platform, account_id)
    if other is not None and other.id != contact.id:
        raise UserError(
            "contact.account_taken", platform=label(platform), value=account_id, name=other.name
        )
    current = account_of(session, contact.id, platform)
    if current is None:
        session.add(Account(contact_id=contact.id, platform=platform, account_id=account_id))
        session.flush()
        return None
    previous = current.account_id
    current.account_id = account_id
    session.add(current)
    session.flush()
    return previous


def bind_by_admin(
    session: Session, contact: Contact, platform: str, value: str, *, actor: str
) -> str:
    """An admin ties a contact to an account by its id (where the platform allows it: its
    spec's admin_binds); returns the id as stored. Audited."""
    spec = registry.spec_of(platform)
    if spec is None or not spec.admin_binds:
        raise UserError("account.no_admin_bind", platform=label(platform) if spec else platform)
    account_id = normalise(platform, value)
    set_account(session, contact, platform, account_id)
    audit.record(
        session,
        actor=actor,
        action="contact.account",
        name=contact.name,
        platform=platform,
        account=account_id,
    )
    return account_id


def preferred(held: dict[str, str]) -> str:
    """The platform private notices go to of the accounts held (by channel priority), or
    "none" for a contact without one."""
    ranked = registry.by_priority(set(held))
    return ranked[0] if ranked else "none"
