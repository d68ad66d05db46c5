"""genotype sets (sealed genotype chunks beside the cohort) and projects' genotype grants

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 06:49:24.479625
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('genotype_sets',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('variants', sa.Integer(), nullable=False),
    sa.Column('chunks', sa.JSON(), nullable=False),
    sa.Column('source', sa.JSON(), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('genotype_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_genotype_sets_current'), ['current'], unique=False)

    op.create_table('access_genotype_grants',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('granted_by', sa.String(length=32), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('project_id')
    )


def downgrade() -> None:
    op.drop_table('access_genotype_grants')
    with op.batch_alter_table('genotype_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_genotype_sets_current'))

    op.drop_table('genotype_sets')
