"""The signed-in floor (issue 20): on PostgreSQL the request's principal (session row, user,
organisation, grant in force) is read in one autocommitted statement, with no BEGIN and COMMIT
around it; the view's own work still runs in one transaction, and a revocation between two
requests still bites on the second."""
from __future__ import annotations

import pytest

from portal import db
from portal.auth.sessions import revoke_user
from tests.sql_seen import statements_sent


@pytest.fixture
def statements(app):
    """Every statement the app sends (seen by the driver, tests.sql_seen): its text and whether
    the connection was in autocommit."""
    if app.extensions["db_engine"].dialect.name != "postgresql":
        pytest.skip("the autocommitted principal read is PostgreSQL's (SQLite's BEGIN costs no round trip)")
    seen: list[tuple[str, bool]] = []
    with statements_sent(app.extensions["db_engine"], lambda sql, _params, auto: seen.append((sql, auto))):
        yield seen


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


def _cookie_digest(client) -> str:
    from portal.auth.sessions import COOKIE_NAME, digest

    return digest(client.get_cookie(COOKIE_NAME).value)


def test_the_driver_read_returns_what_sqlalchemy_reads(app, signed_in, factory, statements):
    """The principal read sent to psycopg itself (the signed-in floor, issue 20) comes back with
    the same values, types and time zones as the same statement run through SQLAlchemy: a user
    with an organisation under facility clearance, a grant in force, 2FA and an unread
    notification; a session whose user is disabled; no session."""
    from datetime import timezone

    from portal.auth import principal
    from portal.auth.models import User
    from portal.notifications.models import Notification
    from tests.reports_helpers import new_report

    user = factory.user("filer", totp=True)
    client = signed_in(user)
    rid = new_report(client)
    with app.app_context():
        s = db.session()
        s.add(Notification(user_id=user.id, report_id=rid, kind="message"))
        s.commit()
    engine = app.extensions["db_engine"]

    def both(session_id):
        with engine.connect() as conn:
            through_sqlalchemy = principal.load(conn.execution_options(isolation_level="AUTOCOMMIT"), session_id)
        return through_sqlalchemy, principal.load_autocommitted(engine, session_id)

    with app.app_context():
        expected, got = both(_cookie_digest(client))
        assert got == expected and got is not None
        (row, who), (want_row, want_who) = got, expected
        assert who.user_id == user.id and who.grant is not None and who.unread_notifications == 1
        assert (who.user_row, who.org_row) == (want_who.user_row, want_who.org_row)
        assert who.org_row[3] is not None and who.user_row[8] is not None  # clearance from, 2FA since
        values = [*row, *who.user_row, *who.org_row, *who.grant]
        assert [type(v) for v in values] == [type(v) for v in [*want_row, *want_who.user_row, *want_who.org_row,
                                                                 *want_who.grant]]
        assert all(v.tzinfo is timezone.utc for v in (row.created_at, row.last_seen_at, who.grant[1]))

        s = db.session()
        s.get(User, user.id).active = False
        s.commit()
        expected, got = both(_cookie_digest(client))
        assert got == expected and got[1].user_id is None
        assert both("0" * 64) == (None, None)


def _backend_of_pooled_connection(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def test_a_pooled_connection_broken_under_the_driver_read_is_dropped_and_the_request_is_served(
        app, signed_in, factory, statements):
    """The database ends the connection the pool would hand the session read (what a restart or
    an idle timeout does): that request is still served signed in, read again on a fresh
    connection, and the broken one never goes back to the pool."""
    user = factory.user("filer")
    client = signed_in(user)
    engine = app.extensions["db_engine"]
    doomed = _backend_of_pooled_connection(engine)
    assert _backend_of_pooled_connection(engine) == doomed  # LIFO: the same one comes back
    import psycopg

    with psycopg.connect(engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as other:  # outside the pool: not the doomed one
        other.execute("SELECT pg_terminate_backend(%s)", (doomed,))
    # The terminated connection is the next checkout (LIFO), and the session read is not pinged.
    statements.clear()
    resp = client.get("/account")
    assert resp.status_code == 200 and user.email in resp.get_data(as_text=True)
    assert len(_principal(statements)) == 2, statements  # the failed read and the one through SQLAlchemy
    assert _backend_of_pooled_connection(engine) != doomed


def test_a_trivial_signed_in_request_opens_no_orm_session(app, signed_in, factory, monkeypatch):
    """/livez reads the principal and nothing else: it builds no ORM session to close again
    (a tenth of the floor's own work), and a page that does read still commits its session."""
    client = signed_in(factory.user("filer"))
    made = []
    real = app.extensions["db_sessionmaker"]

    def counted():
        made.append(1)
        return real()

    monkeypatch.setitem(app.extensions, "db_sessionmaker", counted)
    assert client.get("/livez").status_code == 200
    if app.extensions["db_engine"].dialect.name == "postgresql":
        assert made == []
    assert client.get("/reports").status_code == 200
    assert made


def test_no_connection_to_be_had_answers_the_outage_page_without_a_second_attempt(app, signed_in, factory,
                                                                                   statements, monkeypatch):
    """The database refuses connections: the signed-in request answers the portal's 503 page
    after one attempt to connect, not two (the read through SQLAlchemy is for a connection the
    driver read had and lost, not for one it never got)."""
    import psycopg

    client = signed_in(factory.user("filer"))
    engine = app.extensions["db_engine"]
    attempts = []

    def refused(*_a, **_kw):
        attempts.append("checkout")
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(engine, "raw_connection", refused)
    monkeypatch.setattr(engine, "connect", refused)
    resp = client.get("/account")
    assert resp.status_code == 503 and attempts == ["checkout"]
