"""key retirement that sees wraps in flight; blob chunks carry their age

Revision ID: 0013
Revises: 0012

``kek_leases``: a data key being wrapped under a KEK whose row is not committed yet (written
in its own transaction before the wrap, deleted by the transaction that stores the key).
``kek_retirements``: a KEK marked for retirement (committed before anything is counted) and
when it left the keyring. Both sides write before they read, so a retirement either sees the
wrap in flight or the wrap sees the mark (portal.encryption.leases).
``blob_chunks.created_at``: `portal blobs clean-partial` removes only old unreferenced chunks;
existing chunks get the time of the upgrade.
"""
from alembic import op
import sqlalchemy as sa
import portal.db


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def upgrade() -> None:
    op.create_table('kek_leases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kek_id', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=False),
    sa.Column('taken_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kek_leases'))
    )
    with op.batch_alter_table('kek_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kek_leases_kek_id'), ['kek_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kek_leases_expires_at'), ['expires_at'], unique=False)
    op.create_table('kek_retirements',
    sa.Column('kek_id', sa.String(length=64), nullable=False),
    sa.Column('marked_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kek_id', name=op.f('pk_kek_retirements'))
    )
    # SQLite adds a column with a non-constant default only to a table created with it.
    with op.batch_alter_table('blob_chunks', schema=None, recreate='always' if _sqlite() else 'auto') as batch_op:
        batch_op.add_column(sa.Column('created_at', portal.db.UTCDateTime(timezone=True),
                                      server_default=sa.func.now(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('blob_chunks', schema=None) as batch_op:
        batch_op.drop_column('created_at')
    op.drop_table('kek_retirements')
    with op.batch_alter_table('kek_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kek_leases_expires_at'))
        batch_op.drop_index(batch_op.f('ix_kek_leases_kek_id'))
    op.drop_table('kek_leases')
