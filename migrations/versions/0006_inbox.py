"""inbox: every incoming update stored before it is acknowledged

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 03:00:00

The inbox replaces processed_update: a row is written when an update arrives (before the
platform is told we have it) and marked handled in the transaction that has its effect.
Rows already in processed_update move over as handled.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'inbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sa.String(), nullable=False),
        sa.Column('update_key', sa.String(), nullable=False),
        sa.Column('chat_key', sa.String(), nullable=False),
        sa.Column('payload', sa.String(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('handled_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('platform', 'update_key'),
    )
    op.create_index(op.f('ix_inbox_handled_at'), 'inbox', ['handled_at'], unique=False)
    op.execute(
        "INSERT INTO inbox (platform, update_key, chat_key, payload, received_at, handled_at) "
        "SELECT platform, update_key, '', '', processed_at, processed_at FROM processed_update"
    )
    op.drop_table('processed_update')


def downgrade() -> None:
    op.create_table(
        'processed_update',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sa.String(), nullable=False),
        sa.Column('update_key', sa.String(), nullable=False),
        sa.Column('processed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('platform', 'update_key'),
    )
    op.execute(
        "INSERT INTO processed_update (platform, update_key, processed_at) "
        "SELECT platform, update_key, COALESCE(handled_at, received_at) FROM inbox"
    )
    op.drop_index(op.f('ix_inbox_handled_at'), table_name='inbox')
    op.drop_table('inbox')
