"""Baseline: the schema of 16a023a, the last release before schema versions.

A new database gets every table. A database that release made (its tables there, with no
version) is adopted: the tables it lacks are created (some rooms made theirs on first use) and
the ones it has are kept as they are; ``strongroom upgrade`` then compares the result with the
code's tables and refuses to call it current if anything differs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

_adopted: set[str] = set()


class _Kept:
    """Stands in for a batch operation on a table that was adopted: its indexes exist."""

    def create_index(self, *args: Any, **kwargs: Any) -> None:
        return None

    def f(self, name: str) -> str:
        return name


def _create_table(name: str, *columns: Any, **kwargs: Any) -> None:
    if sa.inspect(op.get_bind()).has_table(name):
        _adopted.add(name)
        return
    op.create_table(name, *columns, **kwargs)


@contextmanager
def _indexes(name: str) -> Iterator[Any]:
    if name in _adopted:
        yield _Kept()
        return
    with op.batch_alter_table(name, schema=None) as batch_op:
        yield batch_op


def upgrade() -> None:
    _adopted.clear()
    _create_table('access_institutions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('jurisdiction', sa.String(length=100), nullable=False),
    sa.Column('networks', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    _create_table('access_login_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email_digest', sa.String(length=64), nullable=False),
    sa.Column('source_digest', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('access_login_attempts') as batch_op:
        batch_op.create_index('ix_login_attempts_email_at', ['email_digest', 'at'], unique=False)
        batch_op.create_index('ix_login_attempts_source_at', ['source_digest', 'at'], unique=False)

    _create_table('access_pauses',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_by', sa.String(length=32), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lift_requested_by', sa.String(length=32), nullable=True),
    sa.Column('lift_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.String(length=32), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('alert_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('access_pauses') as batch_op:
        batch_op.create_index(batch_op.f('ix_access_pauses_target_id'), ['target_id'], unique=False)

    _create_table('audit_checkpoints',
    sa.Column('tree_size', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('frontier', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('tree_size')
    )
    _create_table('audit_entries',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('subject', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with _indexes('audit_entries') as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_subject'), ['subject'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_type'), ['type'], unique=False)

    _create_table('cohort_versions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('participants', sa.Integer(), nullable=False),
    sa.Column('tables', sa.JSON(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('dictionary_digest', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('cohort_versions') as batch_op:
        batch_op.create_index(batch_op.f('ix_cohort_versions_current'), ['current'], unique=False)

    _create_table('extracts_manifests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('recipient_id', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('carriers', sa.JSON(), nullable=False),
    sa.Column('decoys_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('decoy_count', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('cohort_version', sa.String(length=36), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('extracts_manifests') as batch_op:
        batch_op.create_index(batch_op.f('ix_extracts_manifests_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_extracts_manifests_project_id'), ['project_id'], unique=False)

    _create_table('outputs_ledger_releases',
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('population_size', sa.Integer(), nullable=False),
    sa.Column('population_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('release_id')
    )
    with _indexes('outputs_ledger_releases') as batch_op:
        batch_op.create_index(batch_op.f('ix_outputs_ledger_releases_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outputs_ledger_releases_project_id'), ['project_id'], unique=False)

    _create_table('watch_alerts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('detector', sa.String(length=48), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('institution_id', sa.String(length=32), nullable=True),
    sa.Column('project_id', sa.String(length=32), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('suspensions', sa.JSON(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=32), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=32), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('appeal', sa.Text(), nullable=True),
    sa.Column('appealed_by', sa.String(length=32), nullable=True),
    sa.Column('appealed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('watch_alerts') as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_alerts_dedup_key'), ['dedup_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_alerts_detector'), ['detector'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_alerts_status'), ['status'], unique=False)

    _create_table('watch_appeal_decisions',
    sa.Column('alert_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=32), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('confirmed_by', sa.String(length=32), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('alert_id')
    )
    _create_table('watch_declared_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('record_participants', sa.Integer(), nullable=False),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('declared_by', sa.String(length=32), nullable=False),
    sa.Column('approved_by', sa.String(length=32), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('watch_declared_jobs') as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_declared_jobs_project_id'), ['project_id'], unique=False)

    _create_table('watch_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.String(length=32), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('watch_deliveries') as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_deliveries_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_deliveries_next_at'), ['next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_deliveries_status'), ['status'], unique=False)

    _create_table('watch_exposures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('participants', sa.Integer(), nullable=False),
    sa.Column('members_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('watch_exposures') as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_exposures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_exposures_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_exposures_project_id'), ['project_id'], unique=False)

    _create_table('watch_limits',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=False),
    sa.Column('overrides', sa.JSON(), nullable=False),
    sa.Column('set_by', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'target_id')
    )
    _create_table('watch_meter',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('institution_id', sa.String(length=32), nullable=True),
    sa.Column('project_id', sa.String(length=32), nullable=True),
    sa.Column('token_id', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('route', sa.String(length=120), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('rows_scanned', sa.BigInteger(), nullable=False),
    sa.Column('participants', sa.Integer(), nullable=False),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('record_rows', sa.Integer(), nullable=False),
    sa.Column('near_threshold', sa.Integer(), nullable=False),
    sa.Column('differencing', sa.Integer(), nullable=False),
    sa.Column('differencing_within', sa.Integer(), nullable=False),
    sa.Column('query_digest', sa.String(length=64), nullable=True),
    sa.Column('query_shape', sa.String(length=64), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('watch_meter') as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_meter_at'), ['at'], unique=False)
        batch_op.create_index('ix_watch_meter_institution_at', ['institution_id', 'at'], unique=False)
        batch_op.create_index('ix_watch_meter_person_at', ['person_id', 'at'], unique=False)
        batch_op.create_index('ix_watch_meter_project_at', ['project_id', 'at'], unique=False)

    _create_table('access_people',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('totp_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('totp_last_step', sa.Integer(), nullable=False),
    sa.Column('mfa_confirmed', sa.Boolean(), nullable=False),
    sa.Column('vetting', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['access_institutions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    _create_table('outputs_ledger_cells',
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('population_size', sa.Integer(), nullable=False),
    sa.Column('complement_size', sa.Integer(), nullable=False),
    sa.Column('population_digest', sa.String(length=64), nullable=False),
    sa.Column('members_sealed', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['outputs_ledger_releases.release_id'], ),
    sa.PrimaryKeyConstraint('release_id', 'ordinal')
    )
    with _indexes('outputs_ledger_cells') as batch_op:
        batch_op.create_index('ix_outputs_ledger_cells_complement', ['institution_id', 'complement_size'], unique=False)
        batch_op.create_index('ix_outputs_ledger_cells_size', ['institution_id', 'size'], unique=False)

    _create_table('outputs_ledger_vectors',
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('institution_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('values_sealed', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['outputs_ledger_releases.release_id'], ),
    sa.PrimaryKeyConstraint('release_id', 'ordinal')
    )
    with _indexes('outputs_ledger_vectors') as batch_op:
        batch_op.create_index(batch_op.f('ix_outputs_ledger_vectors_institution_id'), ['institution_id'], unique=False)

    _create_table('access_person_roles',
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'role')
    )
    _create_table('access_projects',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('lead_id', sa.String(length=32), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('export', sa.String(length=16), nullable=False),
    sa.Column('export_requested_by', sa.String(length=32), nullable=True),
    sa.Column('export_approved_by', sa.String(length=32), nullable=True),
    sa.Column('key_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    _create_table('access_sessions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('csrf_digest', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    with _indexes('access_sessions') as batch_op:
        batch_op.create_index(batch_op.f('ix_access_sessions_person_id'), ['person_id'], unique=False)

    _create_table('access_training',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('course', sa.String(length=200), nullable=False),
    sa.Column('completed_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('access_training') as batch_op:
        batch_op.create_index(batch_op.f('ix_access_training_person_id'), ['person_id'], unique=False)

    _create_table('access_field_grants',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('field_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'field_id')
    )
    _create_table('access_project_members',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'person_id')
    )
    _create_table('access_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    with _indexes('access_tokens') as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_tokens_project_id'), ['project_id'], unique=False)

    _create_table('outputs_outputs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('requester', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=120), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('verdict', sa.String(length=32), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('justification', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.ForeignKeyConstraint(['requester'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('outputs_outputs') as batch_op:
        batch_op.create_index(batch_op.f('ix_outputs_outputs_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_outputs_status_created', ['status', 'created_at'], unique=False)

    _create_table('privacy_budgets',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('dp_mode', sa.Boolean(), nullable=False),
    sa.Column('epsilon_total', sa.Text(), nullable=False),
    sa.Column('epsilon_spent', sa.Text(), nullable=False),
    sa.Column('delta_total', sa.Text(), nullable=False),
    sa.Column('delta_spent', sa.Text(), nullable=False),
    sa.Column('queries', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('project_id')
    )
    _create_table('privacy_spends',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('token_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('table_name', sa.String(length=32), nullable=False),
    sa.Column('epsilon', sa.Text(), nullable=False),
    sa.Column('delta', sa.Text(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('spec_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('charged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['access_people.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['access_projects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with _indexes('privacy_spends') as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_spends_project_id'), ['project_id'], unique=False)

    _create_table('outputs_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('output_id', sa.String(length=32), nullable=False),
    sa.Column('reviewer', sa.String(length=32), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['output_id'], ['outputs_outputs.id'], ),
    sa.ForeignKeyConstraint(['reviewer'], ['access_people.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('output_id', 'reviewer', name='uq_outputs_review_once')
    )
    with _indexes('outputs_reviews') as batch_op:
        batch_op.create_index(batch_op.f('ix_outputs_reviews_output_id'), ['output_id'], unique=False)



def downgrade() -> None:
    raise NotImplementedError(
        "the baseline is never undone: it would drop every table; restore a backup instead")
