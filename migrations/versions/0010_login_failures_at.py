"""sign-in throttling that cannot lock the owner out: failures purged by age

Revision ID: 0010
Revises: 0009

The throttle now counts failures per account and source (kind ``pair``) besides per account
and per address, and forgets those no rule looks at any more at each successful sign-in:
an index on ``at`` alone keeps that purge a range scan. Existing rows keep their meaning.
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_login_failures_at', 'login_failures', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_login_failures_at', table_name='login_failures')
