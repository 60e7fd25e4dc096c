"""the English notice, signed and stored at issue like the Japanese one

Revision ID: 0014
Revises: 0013

``informs.notice_en_*``: the English notice (issue 16) is rendered, signed and stored encrypted
at approval beside the Japanese one, so it too is the same bytes on every download. NULL for
informs issued before this revision (their English notice is still rendered on request).
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('informs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_en_uid', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('notice_en_blob_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('notice_en_kek_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('notice_en_wrapped_dek', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('notice_en_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('notice_en_size', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_informs_notice_en_blob_key'), ['notice_en_blob_key'])
        batch_op.create_index(batch_op.f('ix_informs_notice_en_kek_id'), ['notice_en_kek_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('informs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_informs_notice_en_kek_id'))
        batch_op.drop_constraint(batch_op.f('uq_informs_notice_en_blob_key'), type_='unique')
        batch_op.drop_column('notice_en_size')
        batch_op.drop_column('notice_en_sha256')
        batch_op.drop_column('notice_en_wrapped_dek')
        batch_op.drop_column('notice_en_kek_id')
        batch_op.drop_column('notice_en_blob_key')
        batch_op.drop_column('notice_en_uid')
