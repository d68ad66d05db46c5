"""answers that are not outputs (definitions refused once they read the data)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outputs_answers',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('requester', sa.String(length=32), nullable=False),
        sa.Column('project_id', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('what', sa.String(length=16), nullable=False),
        sa.Column('spent', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['access_projects.id']),
        sa.ForeignKeyConstraint(['requester'], ['access_people.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('outputs_answers', schema=None) as batch_op:
        batch_op.create_index('ix_outputs_answers_requester_created',
                              ['requester', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outputs_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_outputs_answers_requester_created')
    op.drop_table('outputs_answers')
