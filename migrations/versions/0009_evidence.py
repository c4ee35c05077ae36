"""evidence files and voice messages waiting to be confirmed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 07:00:00

`evidence`: the files people send as evidence (佐证材料) of an item or a report, kept under
DATA_DIR/evidence by SHA-256. `pending_voice`: what speech recognition made of a WeCom voice
message, until its sender confirms it.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("mime", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("platform_file_id", sa.String(), nullable=False),
        sa.Column("choice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["work_item.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_id"], ["report.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["choice_id"], ["pending_choice.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evidence_item_created", "evidence", ["item_id", "created_at"])
    op.create_index(op.f("ix_evidence_report_id"), "evidence", ["report_id"])
    op.create_index(op.f("ix_evidence_contact_id"), "evidence", ["contact_id"])
    op.create_index(op.f("ix_evidence_sha256"), "evidence", ["sha256"])
    op.create_table(
        "pending_voice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("choice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["choice_id"], ["pending_choice.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pending_voice_contact_id"), "pending_voice", ["contact_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_voice_contact_id"), table_name="pending_voice")
    op.drop_table("pending_voice")
    op.drop_index(op.f("ix_evidence_sha256"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_contact_id"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_report_id"), table_name="evidence")
    op.drop_index("ix_evidence_item_created", table_name="evidence")
    op.drop_table("evidence")
