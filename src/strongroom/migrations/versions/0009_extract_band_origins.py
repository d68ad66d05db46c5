"""extracts record which quasi-identifiers they released in keyed bands (band-origin carrier)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # extracts made before this revision banded from 0: [] (no keyed bands) keeps their
    # digests and verdicts
    with op.batch_alter_table('extracts_manifests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bands', sa.JSON(), nullable=False,
                                      server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('extracts_manifests', schema=None) as batch_op:
        batch_op.drop_column('bands')
