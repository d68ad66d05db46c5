"""the meter counts jobs whose real run ended otherwise than their dummy run, and late ends

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('watch_meter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('diverged', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('late', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('watch_meter', schema=None) as batch_op:
        batch_op.drop_column('late')
        batch_op.drop_column('diverged')
