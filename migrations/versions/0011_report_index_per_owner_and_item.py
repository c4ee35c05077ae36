"""report index per owner and item

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:00:00

The scheduler's minutely read takes each owner's newest report on each of their items; with
(contact_id, item_id, created_at) that is one index entry each, read backwards, however long
the history. `ix_report_contact_id` goes: (contact_id, created_at) and the new index both
begin with contact_id, so a report still has as many indexes to keep up as before.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_contact_item_created", ["contact_id", "item_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_report_contact_id")


def downgrade() -> None:
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index("ix_report_contact_id", ["contact_id"], unique=False)
        batch_op.drop_index("ix_report_contact_item_created")
