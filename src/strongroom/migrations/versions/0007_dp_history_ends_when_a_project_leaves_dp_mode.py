"""a project's DP history ends when it leaves DP mode (when, by whom, why)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('privacy_budgets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('left_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('left_by', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('left_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('privacy_budgets', schema=None) as batch_op:
        batch_op.drop_column('left_reason')
        batch_op.drop_column('left_by')
        batch_op.drop_column('left_at')
