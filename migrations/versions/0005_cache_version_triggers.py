"""cache_version and the triggers that bump it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 01:30:00

The chat core caches who a sender is, the current plan, items by number and who answers for
what (bot/refcache.py). Every change to those tables, by any process (the bot, the CLI, a
person at the psql prompt), bumps cache_version through these triggers, and the cache checks
the counter on each update.

NOTE for later migrations: SQLite's batch mode rebuilds a table it alters, and the rebuilt
table has no triggers. A migration that batch-alters contact, plan, section, work_item or
assignment must call bot.refcache.create_triggers() again (tests/test_refcache.py checks the
head).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from bot.refcache import create_triggers, drop_triggers

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('contact', 'plan', 'section', 'work_item', 'assignment')


def upgrade() -> None:
    table = op.create_table(
        'cache_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(table, [{'id': 1, 'version': 0}])
    create_triggers(op.get_bind(), TABLES)


def downgrade() -> None:
    drop_triggers(op.get_bind(), TABLES)
    op.drop_table('cache_version')
