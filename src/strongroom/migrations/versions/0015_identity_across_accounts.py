"""identity across accounts: a person's ORCID, their name's key, and custodians' links

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from strongroom.access.names import name_key

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('orcid', sa.String(length=19), nullable=True))
        batch_op.add_column(sa.Column('name_key', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_access_people_orcid'), ['orcid'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_people_name_key'), ['name_key'],
                              unique=False)
    # the keys of the people already registered, computed as the code computes a new one's
    # (a later change to the normalisation needs a revision of its own that recomputes them)
    people = sa.table('access_people', sa.column('id', sa.String),
                      sa.column('name', sa.String), sa.column('name_key', sa.String))
    bind = op.get_bind()
    for person_id, name in bind.execute(sa.select(people.c.id, people.c.name)).all():
        bind.execute(people.update().where(people.c.id == person_id)
                     .values(name_key=name_key(name)))

    op.create_table('access_account_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('same_as', sa.String(length=32), nullable=False),
    sa.Column('relation', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('linked_by', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_by', sa.String(length=32), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.ForeignKeyConstraint(['same_as'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('access_account_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_account_links_person_id'), ['person_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_access_account_links_same_as'), ['same_as'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('access_account_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_account_links_same_as'))
        batch_op.drop_index(batch_op.f('ix_access_account_links_person_id'))
    op.drop_table('access_account_links')
    # not batch: on SQLite a batch drop copies access_people and drops the original, which
    # the tables that refer to it refuse; SQLite (3.35 and later) drops a column in place
    op.drop_index(op.f('ix_access_people_name_key'), table_name='access_people')
    op.drop_index(op.f('ix_access_people_orcid'), table_name='access_people')
    op.drop_column('access_people', 'name_key')
    op.drop_column('access_people', 'orcid')
