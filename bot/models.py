"""The data model: plans, items, targets, contacts, assignments, reports and delivery state.

Times are stored in UTC (naive in the database, made aware on the way out) and shown
in the plan's time zone.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class Row(SQLModel):
    """The base of every table: a row model whose pydantic validator is built when first needed.

    Pydantic builds a validator and a serializer for every model as its class is made (about
    15-20 ms for these tables, paid by every command and at every start), yet rows are loaded by
    SQLAlchemy and table models are not validated when made; the few code paths that dump one
    (`model_dump`) pay for that model's build then, once.
    """

    model_config = ConfigDict(defer_build=True)  # type: ignore[assignment]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned aware in UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _enum(enum_type: type[enum.StrEnum]) -> sa.Enum:
    """An enum stored as its value in a VARCHAR(16) (no native type, no CHECK constraint)."""
    return sa.Enum(
        enum_type,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=sa.JSON, nullable=False)


class Role(enum.StrEnum):
    """What a contact may do."""

    admin = "admin"
    leader = "leader"
    official = "official"


class AssignmentRole(enum.StrEnum):
    """Lead (牵头) or support (配合)."""

    lead = "lead"
    support = "support"


class ReportStatus(enum.StrEnum):
    """The status word of a progress report."""

    not_started = "not_started"
    in_progress = "in_progress"
    delayed = "delayed"
    done = "done"


class PlanKind(enum.StrEnum):
    """An imported plan document, or the list of tasks handed down by command (交办事项)."""

    plan = "plan"
    tasks = "tasks"


class Plan(Row, table=True):
    """A work plan, as imported from its document, or the one list of 交办 tasks.

    Several are active at once; each has a short code that references may carry (民生3, J3).
    A closed plan (closed_at set, at year end) is read-only and kept with its history.
    """

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(index=True, unique=True)
    code: str = Field(unique=True)
    kind: PlanKind = Field(default=PlanKind.plan, sa_type=_enum(PlanKind))
    closed_at: datetime | None = _ts()
    doc_number: str | None = None
    issuer: str | None = None
    issued_on: date | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    source_file: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Section(Row, table=True):
    """A top-level section of a plan (一、二、...)."""

    __table_args__ = (sa.UniqueConstraint("plan_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True, ondelete="CASCADE")
    number: int
    label: str
    title: str
    leader_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")


class WorkItem(Row, table=True):
    """A numbered work item: what people report on."""

    __tablename__ = "work_item"
    __table_args__ = (sa.UniqueConstraint("plan_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True, ondelete="CASCADE")
    section_id: int = Field(foreign_key="section.id", index=True, ondelete="CASCADE")
    number: int
    label: str
    title: str
    body: str = ""
    subsection: str | None = None
    lead_units: list[str] = _json_list()
    support_units: list[str] = _json_list()
    suggested_deadline: date | None = None
    deadline: date | None = None
    removed_at: datetime | None = _ts()
    # 交办 tasks: who handed it down (told when it is done or falls behind) and their note
    assigned_by_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    note: str = ""
    # carried over from last year's plan: the earlier item (its reports stay there)
    carried_from_id: int | None = Field(
        default=None, foreign_key="work_item.id", ondelete="SET NULL"
    )


class Target(Row, table=True):
    """A quantitative target of a work item."""

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="work_item.id", index=True, ondelete="CASCADE")
    position: int = 0
    text: str
    metric: str
    comparator: str
    value: float
    unit: str = ""
    additive: bool = False


class Contact(Row, table=True):
    """A person Duban talks to: an official of a unit, a leader or an admin."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    unit: str = ""
    role: Role = Field(default=Role.official, sa_type=_enum(Role))
    active: bool = True
    created_at: datetime = _created()


class Account(Row, table=True):
    """A contact's account on one chat platform (bot/channels): one per platform and contact,
    and an account id belongs to one contact."""

    __table_args__ = (
        sa.UniqueConstraint("platform", "account_id"),
        sa.UniqueConstraint("contact_id", "platform"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    platform: str
    account_id: str
    created_at: datetime = _created()


class Assignment(Row, table=True):
    """A contact's responsibility for a work item."""

    __table_args__ = (sa.UniqueConstraint("item_id", "contact_id"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="work_item.id", index=True, ondelete="CASCADE")
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    role: AssignmentRole = Field(default=AssignmentRole.lead, sa_type=_enum(AssignmentRole))
    deadline: date | None = None
    created_at: datetime = _created()


class Report(Row, table=True):
    """A progress report on a work item."""

    # The latest report per item (and per contact) as of a moment: the digest's main read;
    # per owner and item: the scheduler's (both begin with contact_id, which needs no other).
    __table_args__ = (
        sa.Index("ix_report_item_created", "item_id", "created_at"),
        sa.Index("ix_report_contact_created", "contact_id", "created_at"),
        sa.Index("ix_report_contact_item_created", "contact_id", "item_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="work_item.id", index=True, ondelete="CASCADE")
    contact_id: int = Field(foreign_key="contact.id")
    percent: int | None = None
    status: ReportStatus | None = Field(default=None, sa_type=_enum(ReportStatus))
    text: str = ""
    source: str = "chat"  # chat | cli | import | voice
    kind: str = "progress"  # progress | reopen (a 交办人 reopening a task closed as done)
    entered_by_id: int | None = Field(default=None, foreign_key="contact.id")
    superseded_by_id: int | None = Field(default=None, foreign_key="report.id")
    withdrawn_at: datetime | None = _ts()
    created_at: datetime = _created()


class TargetValue(Row, table=True):
    """A value reported against one of an item's targets."""

    __tablename__ = "target_value"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True, ondelete="CASCADE")
    target_id: int = Field(foreign_key="target.id", index=True, ondelete="CASCADE")
    value: float


class Outbox(Row, table=True):
    """A planned outgoing message: planned once, delivered at least once, recorded once."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True)
    kind: str
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    item_id: int | None = Field(default=None, foreign_key="work_item.id")
    channel: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    expires_at: datetime | None = _ts()  # past it the message means nothing: dropped, not sent
    state: str = Field(default="pending", index=True)  # pending | sent | failed | dropped
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = None
    sent_at: datetime | None = _ts()
    platform_message_id: str | None = None
    created_at: datetime = _created()


class MessageLink(Row, table=True):
    """A message the bot sent, so a reply to it can be tied back to its item."""

    __tablename__ = "message_link"
    __table_args__ = (sa.UniqueConstraint("platform", "chat_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    chat_id: str
    message_id: str
    item_id: int | None = Field(default=None, foreign_key="work_item.id", ondelete="CASCADE")
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="CASCADE")
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id", ondelete="SET NULL")
    created_at: datetime = _created()


class InboxEntry(Row, table=True):
    """An incoming platform update, stored before the platform is told we have it (the 200
    of a callback, the polling offset), then handled from here exactly once.

    One row per (platform, key): Telegram update_id, WeCom MsgId (or sender + time). The
    same row is the dedupe mark: `handled_at` is set in the transaction that has the
    update's effect. Handled rows are pruned after INBOX_RETENTION_DAYS.
    """

    __tablename__ = "inbox"
    __table_args__ = (sa.UniqueConstraint("platform", "update_key"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    update_key: str
    chat_key: str = ""  # the chat it came from: stored updates are handled in per-chat order
    payload: str = ""  # the update as received (JSON, decrypted XML); "" for local events
    received_at: datetime = _created()
    handled_at: datetime | None = _ts(index=True)


class Invite(Row, table=True):
    """A one-time code that binds a chat account to a contact."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(unique=True)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = _ts()
    created_at: datetime = _created()


class AuditLog(Row, table=True):
    """Who did what: every admin action."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _created()
    actor: str  # "cli", or "contact:<id>"
    action: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class PendingChoice(Row, table=True):
    """A report waiting for its sender to pick which item it is about (one button per item)."""

    __tablename__ = "pending_choice"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    text: str
    candidates: list[int] = _json_list()  # ids of the items offered
    created_at: datetime = _created()
    resolved_at: datetime | None = _ts()


class BindAttempt(Row, table=True):
    """A /start CODE attempt, kept to lock out guessing (five wrong codes: one hour)."""

    __tablename__ = "bind_attempt"

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    sender_id: str = Field(index=True)
    ok: bool = False
    at: datetime = _created()


class CacheVersion(Row, table=True):
    """One counter that database triggers bump on every change to contacts, plans, sections,
    items and assignments (by any process): what the chat core's reference cache checks."""

    __tablename__ = "cache_version"

    id: int = Field(default=1, primary_key=True)
    version: int = 0


# The tables whose every change must bump cache_version (migration 0005 made the triggers).
CACHED_TABLES = ("contact", "account", "plan", "section", "work_item", "assignment")


class WebToken(Row, table=True):
    """A leaders' board credential: a one-time sign-in link sent in chat, or the session it
    started. Only the SHA-256 of the random token is stored, never the token itself."""

    __tablename__ = "web_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    kind: str  # "link" (one-time, 15 minutes) | "session" (the cookie, 12 hours)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = _ts()
    created_at: datetime = _created()


class Evidence(Row, table=True):
    """A file kept as evidence (佐证材料) of an item: of one report, or of the item alone.

    The file lies under DATA_DIR/evidence by its SHA-256; `name` is what it is shown as (the
    sender's file name, cleaned), never a path. A row with no item yet is a file waiting for
    its sender to say which item it belongs to (a button, or the "which item?" question of
    its caption, `choice_id`). Evidence of a withdrawn report is withdrawn with it; evidence
    of a corrected one stays with it.
    """

    __table_args__ = (sa.Index("ix_evidence_item_created", "item_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int | None = Field(default=None, foreign_key="work_item.id", ondelete="CASCADE")
    report_id: int | None = Field(
        default=None, foreign_key="report.id", index=True, ondelete="CASCADE"
    )
    contact_id: int = Field(foreign_key="contact.id", index=True)  # who sent it
    sha256: str = Field(index=True)
    size: int
    mime: str
    kind: str  # photo | document | video
    name: str
    note: str = ""  # a caption that was no report
    platform: str
    platform_file_id: str = ""  # the platform's id of the file (WeCom's expires in 3 days)
    choice_id: int | None = Field(
        default=None, foreign_key="pending_choice.id", ondelete="SET NULL"
    )
    created_at: datetime = _created()


class PendingVoice(Row, table=True):
    """What speech recognition made of a voice message, waiting for its sender to confirm it
    (确认 / 取消) before it is read as a report."""

    __tablename__ = "pending_voice"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    text: str
    choice_id: int | None = Field(
        default=None, foreign_key="pending_choice.id", ondelete="SET NULL"
    )
    created_at: datetime = _created()
    resolved_at: datetime | None = _ts()
