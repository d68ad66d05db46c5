"""extracts record the share of participants withheld under their key (membership carrier)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # extracts made before this revision withheld no one: 0 keeps their digests and verdicts
    with op.batch_alter_table('extracts_manifests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withheld_share', sa.Float(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('extracts_manifests', schema=None) as batch_op:
        batch_op.drop_column('withheld_share')
