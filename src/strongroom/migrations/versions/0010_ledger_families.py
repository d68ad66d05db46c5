"""the differencing ledger keeps what each released group counts and each statistic's kind

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # cells released before this revision count as counts (compared with every new count,
    # identical included: the cautious reading); vectors without a kind clash only when some
    # are left over, as before
    with op.batch_alter_table('outputs_ledger_cells', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family', sa.String(length=8), nullable=False,
                                      server_default='count'))
    with op.batch_alter_table('outputs_ledger_vectors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=40), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outputs_ledger_vectors', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('outputs_ledger_cells', schema=None) as batch_op:
        batch_op.drop_column('family')
