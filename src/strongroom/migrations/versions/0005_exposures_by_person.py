"""record-level exposures by the person they went to (lifetime and per-person limits)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('watch_exposures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_watch_exposures_person_id'), ['person_id'],
                              unique=False)
    # exports before this revision went to their project's lead (the API's researcher is the
    # lead or a member; the lead is who a custodian's extract is made for): counting them
    # against the lead keeps a person's lifetime limit from starting at zero
    exposures = sa.table('watch_exposures', sa.column('project_id', sa.String),
                         sa.column('person_id', sa.String))
    projects = sa.table('access_projects', sa.column('id', sa.String),
                        sa.column('lead_id', sa.String))
    lead = (sa.select(projects.c.lead_id).where(projects.c.id == exposures.c.project_id)
            .scalar_subquery())
    op.execute(exposures.update().where(exposures.c.person_id.is_(None))
               .values(person_id=lead))


def downgrade() -> None:
    with op.batch_alter_table('watch_exposures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watch_exposures_person_id'))
        batch_op.drop_column('person_id')
