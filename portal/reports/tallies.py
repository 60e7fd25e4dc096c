"""Rebuilding the report tallies (``ReportTally``) from the reports.

Row triggers keep them in step with every write (migration 0008); a bulk load that runs with
triggers disabled (``session_replication_role = replica``) must rebuild them afterwards.
"""
from __future__ import annotations

from sqlalchemy import text

REBUILD = (
    "DELETE FROM report_tallies",
    "INSERT INTO report_tallies (organisation_id, status, technology_id, classification, n) "
    "SELECT organisation_id, status, COALESCE(technology_id, 0), classification, count(*) FROM reports "
    "GROUP BY organisation_id, status, COALESCE(technology_id, 0), classification",
)


def rebuild(conn) -> int:
    """Recount in the caller's transaction (which should lock out writers, e.g. run it when the
    portal is stopped); returns the number of reports counted."""
    for sql in REBUILD:
        conn.execute(text(sql))
    return int(conn.execute(text("SELECT COALESCE(sum(n), 0) FROM report_tallies")).scalar_one())
