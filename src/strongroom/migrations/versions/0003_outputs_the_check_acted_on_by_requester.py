"""outputs the check acted on, by requester

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:10:57.608691
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outputs_outputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acted', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.create_index('ix_outputs_requester_created', ['requester', 'created_at'],
                              unique=False)
    # outputs checked before this revision: acted on if the check did anything but release
    outputs = sa.table('outputs_outputs', sa.column('verdict', sa.String),
                       sa.column('acted', sa.Boolean))
    op.execute(outputs.update().where(outputs.c.verdict != 'release').values(acted=True))


def downgrade() -> None:
    with op.batch_alter_table('outputs_outputs', schema=None) as batch_op:
        batch_op.drop_index('ix_outputs_requester_created')
        batch_op.drop_column('acted')
