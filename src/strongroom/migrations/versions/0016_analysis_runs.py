"""analysis runs: analyses submitted to run in the background and polled

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 17:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outputs_analysis_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('requester', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('floor', sa.Float(), nullable=False),
    sa.Column('ratio', sa.Float(), nullable=False),
    sa.Column('output_id', sa.String(length=32), nullable=True),
    sa.Column('error', sa.String(length=32), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('retry_after', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.ForeignKeyConstraint(['requester'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outputs_analysis_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outputs_analysis_runs_project_id'), ['project_id'],
                              unique=False)
        batch_op.create_index('ix_outputs_analysis_runs_requester_status',
                              ['requester', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outputs_analysis_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_outputs_analysis_runs_requester_status')
        batch_op.drop_index(batch_op.f('ix_outputs_analysis_runs_project_id'))
    op.drop_table('outputs_analysis_runs')
