"""the daily job: a lease on each day's run and one row per notice sent

Revision ID: 0011
Revises: 0010

A run that crashed used to leave its day marked done. Now a day's row says who runs it and
until when (``owner``, ``lease_until``, ``attempts``), ``finished_at`` alone says it is done,
and ``job_items`` records each notice in the transaction that sends it, so that the run which
takes over skips what was sent. Existing rows keep their meaning; one without ``finished_at``
(a crash under the old code) becomes a run ``portal jobs run --date`` can finish.
"""
from alembic import op
import sqlalchemy as sa
import portal.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_until', portal.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='1', nullable=False))
    op.create_table('job_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('done_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['job_runs.id'], name=op.f('fk_job_items_run_id_job_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_items')),
    sa.UniqueConstraint('run_id', 'key', name=op.f('uq_job_items_run_id'))
    )


def downgrade() -> None:
    op.drop_table('job_items')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_column('attempts')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('owner')
