"""What the app sends to the database, seen where every statement passes: the driver.

SQLAlchemy's cursor events miss the one statement the portal sends to psycopg itself (the
request's principal, portal.auth.principal.load_autocommitted), so on PostgreSQL the tests that
count or inspect statements watch psycopg's cursors instead; on SQLite every statement goes
through SQLAlchemy, whose event sees it. SQLite's BEGIN and the pool's liveness ping are the
database's plumbing, not a page's queries, and are left out.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import sqlalchemy as sa


@contextmanager
def statements_sent(engine, record: Callable[[str, object, bool], None]) -> Iterator[None]:
    """Call ``record(statement, params, autocommit)`` for each statement ``engine``'s
    connections run while the block runs."""
    if engine.dialect.driver == "psycopg":
        import psycopg

        ping = engine.dialect._dialect_specific_select_one
        originals = [(cls, name, getattr(cls, name)) for cls in (psycopg.Cursor, psycopg.ServerCursor)
                     for name in ("execute", "executemany")]

        def watching(cls, name, original):
            def watched(cursor, query, params=None, *args, **kwargs):
                text = query if isinstance(query, str) else query.as_string(cursor)
                if text != ping:
                    record(text, params, cursor.connection.autocommit)
                return original(cursor, query, params, *args, **kwargs)

            return watched

        for cls, name, original in originals:
            setattr(cls, name, watching(cls, name, original))
        try:
            yield
        finally:
            for cls, name, original in originals:
                setattr(cls, name, original)
        return

    def before(conn, _cursor, statement, params, _context, _many):
        if not statement.startswith("BEGIN"):
            record(statement, params, getattr(conn.connection.dbapi_connection, "autocommit", None))

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
