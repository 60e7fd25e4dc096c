"""report tallies kept by triggers

Revision ID: 0008
Revises: 0007

The company list's total and the review queue's counts by status read ``report_tallies``
(one row per organisation, status, technology and classification) instead of counting every
visible report. Row triggers on ``reports`` keep it in the writing transaction, whatever
writes: the services, a bulk load, a manual fix. A later migration that rebuilds ``reports``
in batch mode on SQLite drops these triggers and must create them again (a test compares
the tallies with a count after every kind of write).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

KEY = "organisation_id, status, technology_id, classification"
CHANGED = ("OLD.organisation_id IS DISTINCT FROM NEW.organisation_id OR OLD.status IS DISTINCT FROM NEW.status"
           " OR OLD.technology_id IS DISTINCT FROM NEW.technology_id"
           " OR OLD.classification IS DISTINCT FROM NEW.classification")


def _minus(row: str) -> str:
    return (f"UPDATE report_tallies SET n = n - 1 WHERE organisation_id = {row}.organisation_id"
            f" AND status = {row}.status AND technology_id = COALESCE({row}.technology_id, 0)"
            f" AND classification = {row}.classification;")


PLUS = (f"INSERT INTO report_tallies ({KEY}, n) VALUES (NEW.organisation_id, NEW.status,"
        f" COALESCE(NEW.technology_id, 0), NEW.classification, 1)"
        f" ON CONFLICT ({KEY}) DO UPDATE SET n = report_tallies.n + 1;")


def upgrade() -> None:
    op.create_table('report_tallies',
    sa.Column('organisation_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('technology_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('classification', sa.String(length=16), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organisation_id', 'status', 'technology_id', 'classification',
                            name=op.f('pk_report_tallies'))
    )
    if op.get_bind().dialect.name == "postgresql":
        # No report may change between the count and the triggers' creation (until COMMIT).
        op.execute("LOCK TABLE reports IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"INSERT INTO report_tallies ({KEY}, n) SELECT organisation_id, status,"
               f" COALESCE(technology_id, 0), classification, count(*) FROM reports"
               f" GROUP BY organisation_id, status, COALESCE(technology_id, 0), classification")
    if op.get_bind().dialect.name == "postgresql":
        # A label change moves one report between two tally rows. Both moves happen in one
        # upsert with the rows in key order, so two transactions moving reports in opposite
        # directions (under review -> awaiting response and back) lock the same row first
        # instead of deadlocking.
        op.execute(f"""
CREATE FUNCTION report_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN {PLUS}
  ELSIF TG_OP = 'DELETE' THEN {_minus('OLD')}
  ELSE
    INSERT INTO report_tallies AS t ({KEY}, n)
    SELECT o, s, tech, c, sum(d) FROM (VALUES
        (OLD.organisation_id, OLD.status, COALESCE(OLD.technology_id, 0), OLD.classification, -1),
        (NEW.organisation_id, NEW.status, COALESCE(NEW.technology_id, 0), NEW.classification, 1)
      ) AS v (o, s, tech, c, d)
    GROUP BY o, s, tech, c ORDER BY o, s, tech, c
    ON CONFLICT ({KEY}) DO UPDATE SET n = t.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$""")
        op.execute("""
CREATE FUNCTION report_tally_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM report_tallies;
  RETURN NULL;
END $$""")
        op.execute("CREATE TRIGGER reports_tally_insert AFTER INSERT ON reports"
                   " FOR EACH ROW EXECUTE FUNCTION report_tally()")
        op.execute("CREATE TRIGGER reports_tally_delete AFTER DELETE ON reports"
                   " FOR EACH ROW EXECUTE FUNCTION report_tally()")
        op.execute(f"CREATE TRIGGER reports_tally_update AFTER UPDATE OF {KEY} ON reports"
                   f" FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION report_tally()")
        op.execute("CREATE TRIGGER reports_tally_truncate AFTER TRUNCATE ON reports"
                   " FOR EACH STATEMENT EXECUTE FUNCTION report_tally_truncate()")
    else:
        changed = CHANGED.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(f"CREATE TRIGGER reports_tally_insert AFTER INSERT ON reports BEGIN {PLUS} END")
        op.execute(f"CREATE TRIGGER reports_tally_delete AFTER DELETE ON reports BEGIN {_minus('OLD')} END")
        op.execute(f"CREATE TRIGGER reports_tally_update AFTER UPDATE OF {KEY} ON reports WHEN {changed}"
                   f" BEGIN {_minus('OLD')} {PLUS} END")


def downgrade() -> None:
    for name in ("insert", "delete", "update", "truncate"):
        if name != "truncate" or op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS reports_tally_{name}" + (
                " ON reports" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS report_tally()")
        op.execute("DROP FUNCTION IF EXISTS report_tally_truncate()")
    op.drop_table('report_tallies')
