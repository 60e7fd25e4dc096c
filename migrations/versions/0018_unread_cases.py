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

``unread_tallies`` counts those rows per user, status, labels and rank (kept by triggers on
``unread_cases``), so the filter's total is a sum over a few rows. The case's status, labels
and submission time are copied into each row, so that the filter's
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

TALLY_KEY = "user_id, status, classification, technology_id, lowest_rank"
TALLY_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in TALLY_KEY.split(", "))


def _tally_minus(row: str) -> str:
    return (f"UPDATE unread_tallies SET n = n - 1 WHERE user_id = {row}.user_id AND status = {row}.status"
            f" AND classification = {row}.classification AND technology_id = COALESCE({row}.technology_id, 0)"
            f" AND lowest_rank = {row}.lowest_rank;")


TALLY_PLUS = (f"INSERT INTO unread_tallies ({TALLY_KEY}, n) VALUES (NEW.user_id, NEW.status, NEW.classification,"
              f" COALESCE(NEW.technology_id, 0), NEW.lowest_rank, 1)"
              f" ON CONFLICT ({TALLY_KEY}) DO UPDATE SET n = unread_tallies.n + 1;")

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
    op.create_table('unread_tallies',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('classification', sa.String(length=16), nullable=False),
    sa.Column('technology_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('lowest_rank', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'status', 'classification', 'technology_id', 'lowest_rank',
                            name=op.f('pk_unread_tallies'))
    )
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
        # As report_tally (0008): a move is one upsert with the rows in key order, so two
        # transactions moving rows in opposite directions lock the same row first.
        op.execute(f"""
CREATE FUNCTION unread_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN {TALLY_PLUS}
  ELSIF TG_OP = 'DELETE' THEN {_tally_minus('OLD')}
  ELSE
    INSERT INTO unread_tallies AS t ({TALLY_KEY}, n)
    SELECT u, s, c, tech, r, sum(d) FROM (VALUES
        (OLD.user_id, OLD.status, OLD.classification, COALESCE(OLD.technology_id, 0), OLD.lowest_rank, -1),
        (NEW.user_id, NEW.status, NEW.classification, COALESCE(NEW.technology_id, 0), NEW.lowest_rank, 1)
      ) AS v (u, s, c, tech, r, d)
    GROUP BY u, s, c, tech, r ORDER BY u, s, c, tech, r
    ON CONFLICT ({TALLY_KEY}) DO UPDATE SET n = t.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$""")
        op.execute("CREATE TRIGGER unread_cases_tally_insert AFTER INSERT ON unread_cases"
                   " FOR EACH ROW EXECUTE FUNCTION unread_tally()")
        op.execute("CREATE TRIGGER unread_cases_tally_delete AFTER DELETE ON unread_cases"
                   " FOR EACH ROW EXECUTE FUNCTION unread_tally()")
        op.execute(f"CREATE TRIGGER unread_cases_tally_update AFTER UPDATE OF {TALLY_KEY} ON unread_cases"
                   f" FOR EACH ROW WHEN ({TALLY_CHANGED}) EXECUTE FUNCTION unread_tally()")
    else:
        changed = CHANGED.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(f"CREATE TRIGGER reports_unread_case_labels AFTER UPDATE OF {', '.join(COPIED)} ON reports"
                   f" WHEN {changed} BEGIN {COPY} END")
        op.execute(f"CREATE TRIGGER unread_cases_tally_insert AFTER INSERT ON unread_cases BEGIN {TALLY_PLUS} END")
        op.execute(f"CREATE TRIGGER unread_cases_tally_delete AFTER DELETE ON unread_cases"
                   f" BEGIN {_tally_minus('OLD')} END")
        op.execute(f"CREATE TRIGGER unread_cases_tally_update AFTER UPDATE OF {TALLY_KEY} ON unread_cases"
                   f" WHEN {TALLY_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')}"
                   f" BEGIN {_tally_minus('OLD')} {TALLY_PLUS} END")
    op.execute(BACKFILL)  # through the tally triggers: the tallies are built with the rows


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for trigger, table in (("reports_unread_case_labels", "reports"), ("unread_cases_tally_insert", "unread_cases"),
                           ("unread_cases_tally_delete", "unread_cases"), ("unread_cases_tally_update", "unread_cases")):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (f" ON {table}" if pg else ""))
    if pg:
        op.execute("DROP FUNCTION IF EXISTS unread_case_labels()")
        op.execute("DROP FUNCTION IF EXISTS unread_tally()")
    op.drop_table('unread_tallies')
    op.drop_index('ix_unread_cases_user_submitted', table_name='unread_cases')
    op.drop_index(op.f('ix_unread_cases_report_id'), table_name='unread_cases')
    op.drop_table('unread_cases')
