"""The audit log: every admin action is written down."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.models import AuditLog, Plan, WorkItem

CLI_ACTOR = "cli"


def actor_of(contact_id: int | None) -> str:
    """The audit actor string for a contact, or the CLI when there is none."""
    return CLI_ACTOR if contact_id is None else f"contact:{contact_id}"


def record(session: Session, *, actor: str, action: str, **detail: Any) -> AuditLog:
    """Add an audit entry in the caller's transaction."""
    entry = AuditLog(actor=actor, action=action, detail=detail)
    session.add(entry)
    return entry


def of_item(session: Session, item: WorkItem) -> dict[str, Any]:
    """How an entry names an item: its plan's code and its number (a number alone is ambiguous
    once there are several plans, and which plan is the default can change)."""
    plan = session.get(Plan, item.plan_id)
    return {"plan": plan.code if plan is not None else None, "item": item.number}
