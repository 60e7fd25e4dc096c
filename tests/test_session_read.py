"""The signed-in floor (issue 20): on PostgreSQL the request's principal (session row, user,
organisation, grant in force) is read in one autocommitted statement, with no BEGIN and COMMIT
around it; the view's own work still runs in one transaction, and a revocation between two
requests still bites on the second."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal import db
from portal.auth.sessions import revoke_user


@pytest.fixture
def statements(app):
    """Every statement the app sends: its text and whether the connection was in autocommit."""
    if app.extensions["db_engine"].dialect.name != "postgresql":
        pytest.skip("the autocommitted principal read is PostgreSQL's (SQLite's BEGIN costs no round trip)")
    seen: list[tuple[str, bool]] = []

    def before(conn, _cursor, statement, _params, _context, _many):
        seen.append((statement, conn.connection.dbapi_connection.autocommit))

    engine = app.extensions["db_engine"]
    sa.event.listen(engine, "before_cursor_execute", before)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", before)


def _principal(seen):
    return [auto for sql, auto in seen if "FROM user_sessions" in sql and sql.lstrip().startswith("SELECT")]


def test_a_signed_in_trivial_request_reads_its_principal_alone_in_autocommit(app, signed_in, factory, statements):
    client = signed_in(factory.user("filer"))
    statements.clear()
    assert client.get("/livez").status_code == 200
    # One statement, outside any transaction: no BEGIN/COMMIT round trips (psycopg sends
    # BEGIN only when the connection is not in autocommit).
    assert [auto for _sql, auto in statements] == [True], statements


def test_the_views_work_still_runs_in_a_transaction(app, signed_in, factory, statements):
    client = signed_in(factory.user("filer"))
    statements.clear()
    page = client.get("/reports")
    assert page.status_code == 200
    assert _principal(statements) == [True]
    rest = [auto for sql, auto in statements if "FROM user_sessions" not in sql]
    assert rest and not any(rest), statements  # the list's statements: one transaction, committed once


def _revoke(s, user_id: int) -> None:
    assert revoke_user(s, user_id) == 1


def _disable(s, user_id: int) -> None:
    from portal.auth.models import User

    s.get(User, user_id).active = False


@pytest.mark.parametrize("change", [_revoke, _disable], ids=["sessions revoked", "account disabled"])
def test_a_change_between_two_requests_signs_out_on_the_second(app, signed_in, factory, change):
    user = factory.user("filer")
    client = signed_in(user)
    assert client.get("/reports").status_code == 200
    with app.app_context():
        s = db.session()
        change(s, user.id)
        s.commit()
    resp = client.get("/reports")
    assert resp.status_code == 302 and "/auth/login" in resp.location


def test_the_session_read_is_its_own_ping_and_other_first_statements_are_pinged(app, signed_in, factory, statements,
                                                                                 monkeypatch):
    """The pool's liveness check (what survives a database restart, tests/test_db_outage.py) is
    skipped for the session read, which runs again itself on a broken connection, and for the
    page's statements after it on the same connection; a request whose first statement is not
    the session read (the API, a sign-in) is pinged as before."""
    client = signed_in(factory.user("filer"))
    dialect = app.extensions["db_engine"].dialect
    real, pings = dialect.do_ping, []

    def counted(dbapi_conn):
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(dialect, "do_ping", counted)
    statements.clear()
    assert client.get("/reports").status_code == 200
    assert _principal(statements) == [True] and len(statements) > 1  # two checkouts: the read, the page
    assert client.get("/reports").status_code == 200
    assert pings == []
    api = app.test_client().get("/api/v1/reports", headers={"Authorization": "Bearer ttr_" + "x" * 40})
    assert api.status_code == 401
    assert len(pings) == 1


def test_the_signed_in_user_built_from_the_session_read_is_stored_when_changed(app, signed_in, factory):
    """The user a request sees is built from the principal's row, not queried: a change made
    through it (the language, here from the account page's form) is written like any other,
    and what that row left out (the account's creation time) loads when asked for."""
    from tests.conftest import post_form

    user = factory.user("filer")
    client = signed_in(user)
    assert post_form(client, "/language", {"lang": "en", "next": "/account"}, page="/account").status_code == 302
    with app.app_context():
        from portal.auth.models import User

        stored = db.session().get(User, user.id)
        assert stored.locale == "en" and stored.created_at is not None
    assert 'lang="en"' in client.get("/account").get_data(as_text=True)
