"""unread cases kept per case worker (issue 20)

Revision ID: 0018
Revises: 0017

The review queue's "unread only" filter counted every message against every read mark on
each page (half a second with 1,000,000 messages). ``unread_cases`` keeps, per case worker
and case, whether messages they have not read are there: the lowest classification rank
among them (the reader's clearance decides at query time) and the newest such message. The
services keep it as messages are written and read (``portal.dialogue.unread``); this
migration builds it from the messages and read marks already there, for the roles that work
the queue then (reviewer, approver; both read both channels).

The case's status, labels and submission time are copied into each row, so that the filter's
total and its pages in the queue's default order read one index. Triggers on ``reports`` keep
the copies whatever writes a report (as the tallies' triggers of 0008 do); a later migration
that rebuilds ``reports`` in batch mode on SQLite drops them and must create them again.
"""
from alembic import op
import sqlalchemy as sa
import portal.db


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

COPIED = ("status", "classification", "technology_id", "submitted_at")
CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COPIED)
COPY = ("UPDATE unread_cases SET " + ", ".join(f"{c} = NEW.{c}" for c in COPIED) +
        " WHERE report_id = NEW.id;")

BACKFILL = """
INSERT INTO unread_cases (user_id, report_id, lowest_rank, last_id, status, classification, technology_id,
                          submitted_at)
SELECT u.id, r.id,
       min(CASE m.classification WHEN 'public' THEN 0 WHEN 'restricted' THEN 1
                                 WHEN 'confidential' THEN 2 ELSE 3 END),
       max(m.id), r.status, r.classification, r.technology_id, r.submitted_at
FROM users u
JOIN organisations o ON o.id = u.organisation_id AND o.is_government
JOIN messages m ON m.author_id <> u.id
JOIN reports r ON r.id = m.report_id
LEFT JOIN read_marks rm ON rm.user_id = u.id AND rm.report_id = m.report_id AND rm.channel = m.channel
WHERE u.role IN ('reviewer', 'approver') AND m.channel IN ('external', 'internal')
  AND m.id > COALESCE(rm.last_read_id, 0)
GROUP BY u.id, r.id, r.status, r.classification, r.technology_id, r.submitted_at
"""


def upgrade() -> None:
    op.create_table('unread_cases',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('lowest_rank', sa.Integer(), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('classification', sa.String(length=16), nullable=False),
    sa.Column('technology_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_unread_cases_report_id_reports')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_unread_cases_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'report_id', name=op.f('pk_unread_cases'))
    )
    op.create_index(op.f('ix_unread_cases_report_id'), 'unread_cases', ['report_id'], unique=False)
    op.create_index('ix_unread_cases_user_submitted', 'unread_cases',
                    ['user_id', 'submitted_at', 'report_id', 'lowest_rank', 'status', 'classification',
                     'technology_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # No message, mark or report may change between the backfill and the trigger (until COMMIT).
        op.execute("LOCK TABLE reports, messages, read_marks IN SHARE ROW EXCLUSIVE MODE")
        op.execute(f"""
CREATE FUNCTION unread_case_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {COPY}
  RETURN NULL;
END $$""")
        op.execute(f"CREATE TRIGGER reports_unread_case_labels AFTER UPDATE OF {', '.join(COPIED)} ON reports"
                   f" FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION unread_case_labels()")
    else:
        changed = CHANGED.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(f"CREATE TRIGGER reports_unread_case_labels AFTER UPDATE OF {', '.join(COPIED)} ON reports"
                   f" WHEN {changed} BEGIN {COPY} END")
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS reports_unread_case_labels ON reports")
        op.execute("DROP FUNCTION IF EXISTS unread_case_labels()")
    else:
        op.execute("DROP TRIGGER IF EXISTS reports_unread_case_labels")
    op.drop_index('ix_unread_cases_user_submitted', table_name='unread_cases')
    op.drop_index(op.f('ix_unread_cases_report_id'), table_name='unread_cases')
    op.drop_table('unread_cases')
