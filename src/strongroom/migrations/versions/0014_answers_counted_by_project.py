"""answers counted by project and period (the project's budget of answers)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 15:20:00
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outputs_outputs', schema=None) as batch_op:
        batch_op.create_index('ix_outputs_project_created', ['project_id', 'created_at'],
                              unique=False)
    with op.batch_alter_table('outputs_answers', schema=None) as batch_op:
        batch_op.create_index('ix_outputs_answers_project_created',
                              ['project_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outputs_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_outputs_answers_project_created')
    with op.batch_alter_table('outputs_outputs', schema=None) as batch_op:
        batch_op.drop_index('ix_outputs_project_created')
