"""attachments carry their malware scan: pending, clean, infected or error

Revision ID: 0015
Revises: 0013

Existing attachments become ``pending``: they were stored before the portal scanned anything,
so calling them clean would be a claim nobody checked, and the policy serves only clean files.
Until `portal scan --pending` (README "Malware scanning": run it right after this upgrade)
has scanned them, each is shown to its uploader only, as "being checked"; the command decrypts
each blob and streams it to clamd, so afterwards they are clean or refused like any new upload.
A file that a reader could open before the upgrade is thus unavailable for the minutes the
command takes, never served unscanned.
"""
from alembic import op
import sqlalchemy as sa
import portal.db


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scan_state', sa.String(length=16), server_default='pending', nullable=False))
        batch_op.add_column(sa.Column('scan_signature', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('scanned_at', portal.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_attachments_scan_state'), ['scan_state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_scan_state'))
        batch_op.drop_column('scanned_at')
        batch_op.drop_column('scan_signature')
        batch_op.drop_column('scan_state')
