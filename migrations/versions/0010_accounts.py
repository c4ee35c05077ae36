"""platform accounts in one table

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:30:00

`account` (contact, platform, account id; unique per platform, one per contact and platform)
replaces the per-platform columns `contact.telegram_id` and `contact.wecom_userid`: every
binding is copied, then the columns go. A channel plug-in (bot/channels) needs no column.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from bot.refcache import create_triggers, drop_triggers

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "account_id"),
        sa.UniqueConstraint("contact_id", "platform"),
    )
    op.create_index(op.f("ix_account_contact_id"), "account", ["contact_id"])
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO account (contact_id, platform, account_id, created_at) "
            "SELECT id, 'telegram', CAST(telegram_id AS VARCHAR), created_at FROM contact "
            "WHERE telegram_id IS NOT NULL"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO account (contact_id, platform, account_id, created_at) "
            "SELECT id, 'wecom', wecom_userid, created_at FROM contact "
            "WHERE wecom_userid IS NOT NULL"
        )
    )
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        drop_triggers(conn, ("contact",))
    with op.batch_alter_table("contact", recreate="always" if sqlite else "auto") as batch:
        batch.drop_column("telegram_id")
        batch.drop_column("wecom_userid")
    create_triggers(conn, ("contact", "account") if sqlite else ("account",))


def downgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        drop_triggers(conn, ("contact",))
    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("telegram_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("wecom_userid", sa.String(), nullable=True))
        batch.create_unique_constraint("uq_contact_telegram_id", ["telegram_id"])
        batch.create_unique_constraint("uq_contact_wecom_userid", ["wecom_userid"])
    conn.execute(
        sa.text(
            "UPDATE contact SET telegram_id = (SELECT CAST(a.account_id AS BIGINT) FROM account a "
            "WHERE a.contact_id = contact.id AND a.platform = 'telegram')"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE contact SET wecom_userid = (SELECT a.account_id FROM account a "
            "WHERE a.contact_id = contact.id AND a.platform = 'wecom')"
        )
    )
    op.drop_index(op.f("ix_account_contact_id"), table_name="account")
    op.drop_table("account")
    if sqlite:
        create_triggers(conn, ("contact",))
