"""audit events written in the transaction of the change they record (the audit outbox)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=True),
        sa.Column('subject', sa.String(length=128), nullable=True),
        sa.Column('tail', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('audit_outbox')
