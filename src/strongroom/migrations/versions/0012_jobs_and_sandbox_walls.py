"""jobs, and the meter counts a job's tries at its sandbox walls

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 09:37:05.008455
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('requester', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code_sha256', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('pipeline', sa.Text(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('outputs', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('walls', sa.JSON(), nullable=False),
    sa.Column('usage', sa.JSON(), nullable=False),
    sa.Column('dummy_log', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.ForeignKeyConstraint(['requester'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_jobs_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_jobs_requester_created', ['requester', 'created_at'], unique=False)

    with op.batch_alter_table('watch_meter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('walls', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('watch_meter', schema=None) as batch_op:
        batch_op.drop_column('walls')

    with op.batch_alter_table('jobs_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_requester_created')
        batch_op.drop_index(batch_op.f('ix_jobs_jobs_project_id'))

    op.drop_table('jobs_jobs')
