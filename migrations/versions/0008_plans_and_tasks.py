"""several plans at once and 交办 tasks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:10:00

Every plan gets a short code (民生, 要点, J for the tasks) and a kind; a closed plan keeps its
closed_at. Items get the person who handed a task down, its note, and the item of last year's
plan they were carried over from. Reports get a kind (a reopen is one). Open "which item?"
questions offered item numbers and now offer item ids: the open ones are closed (asked again).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from bot.refcache import create_triggers

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same rule as bot.services.plans.default_code (kept here: a migration never imports app code)
_KEYWORDS = ("要点", "民生", "重点", "专项", "督办", "计划")


def _code(title: str, taken: set[str]) -> str:
    base = next((k for k in _KEYWORDS if k in title), "计划")
    for suffix in ("", *"BCDEFGHKLMNPQRSTUVWXYZ"):
        if base + suffix not in taken:
            return base + suffix
    raise RuntimeError("no free plan code")


def upgrade() -> None:
    with op.batch_alter_table('plan') as batch:
        batch.add_column(sa.Column('code', sa.String(), nullable=True))
        batch.add_column(
            sa.Column('kind', sa.Enum('plan', 'tasks', name='plankind', native_enum=False,
                                      create_constraint=False, length=16),
                      nullable=False, server_default='plan')
        )
        batch.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
    conn = op.get_bind()
    taken: set[str] = set()
    for plan_id, title in conn.execute(sa.text("SELECT id, title FROM plan ORDER BY id")).all():
        code = _code(title, taken)
        taken.add(code)
        conn.execute(sa.text("UPDATE plan SET code = :code WHERE id = :id"),
                     {"code": code, "id": plan_id})
    with op.batch_alter_table('plan') as batch:
        batch.alter_column('code', existing_type=sa.String(), nullable=False)
        batch.alter_column('kind', server_default=None)
        batch.create_unique_constraint('uq_plan_code', ['code'])
    with op.batch_alter_table('work_item') as batch:
        batch.add_column(sa.Column('assigned_by_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('note', sa.String(), nullable=False, server_default=''))
        batch.add_column(sa.Column('carried_from_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_work_item_assigned_by', 'contact', ['assigned_by_id'],
                                 ['id'], ondelete='SET NULL')
        batch.create_foreign_key('fk_work_item_carried_from', 'work_item', ['carried_from_id'],
                                 ['id'], ondelete='SET NULL')
    with op.batch_alter_table('work_item') as batch:
        batch.alter_column('note', server_default=None)
    with op.batch_alter_table('report') as batch:
        batch.add_column(sa.Column('kind', sa.String(), nullable=False, server_default='progress'))
    with op.batch_alter_table('report') as batch:
        batch.alter_column('kind', server_default=None)
    conn.execute(sa.text(
        "UPDATE pending_choice SET resolved_at = created_at WHERE resolved_at IS NULL"
    ))
    _triggers_again()


def _triggers_again() -> None:
    """SQLite's batch mode rebuilt plan and work_item without their cache_version triggers."""
    conn = op.get_bind()
    if conn.dialect.name == 'sqlite':
        create_triggers(conn, ('plan', 'work_item'))


def downgrade() -> None:
    with op.batch_alter_table('report') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('work_item') as batch:
        batch.drop_constraint('fk_work_item_carried_from', type_='foreignkey')
        batch.drop_constraint('fk_work_item_assigned_by', type_='foreignkey')
        batch.drop_column('carried_from_id')
        batch.drop_column('note')
        batch.drop_column('assigned_by_id')
    with op.batch_alter_table('plan') as batch:
        batch.drop_constraint('uq_plan_code', type_='unique')
        batch.drop_column('closed_at')
        batch.drop_column('kind')
        batch.drop_column('code')
    _triggers_again()
