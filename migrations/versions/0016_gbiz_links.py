"""GビズID sign-in: the link between a portal account and its GビズID subject

Revision ID: 0016
Revises: 0013

``gbiz_links``: one row per account that signs in through GビズID (OpenID Connect): the
provider's issuer and subject, the 法人番号 and account type it was linked with, and the
provider's authentication context (acr, amr) at the last sign-in. No existing row changes.
"""
from alembic import op
import sqlalchemy as sa
import portal.db


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gbiz_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('corporate_number', sa.String(length=13), nullable=False),
    sa.Column('account_type', sa.String(length=16), nullable=False),
    sa.Column('linked_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_signin_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_acr', sa.String(length=255), nullable=True),
    sa.Column('last_amr', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_gbiz_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gbiz_links')),
    sa.UniqueConstraint('issuer', 'subject', name=op.f('uq_gbiz_links_issuer')),
    sa.UniqueConstraint('user_id', name=op.f('uq_gbiz_links_user_id'))
    )


def downgrade() -> None:
    op.drop_table('gbiz_links')
