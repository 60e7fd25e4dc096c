"""While the database is away (DESIGN §9): every page answers the portal's own 503 page, a static
file in both languages with Retry-After, for signed-in people too (it used to be gunicorn's
bare "Internal Server Error": the session, read before any error handler, raised
``AssertionError: The session has not yet been opened``); /healthz answers 503 with or without
a session cookie; when the database is back, so is everything, sessions included.

PostgreSQL: a private cluster this test starts and stops (never the shared server), behind a
real gunicorn. SQLite: the database's folder disappears under the running app."""
from __future__ import annotations

import os

import pytest

from tests.conftest import IS_PG, PASSWORD, csrf_of, make_settings, sign_in
from tests.live_server import Server, portal_cli, server_env
from tests.private_postgres import PrivateCluster, server_binaries

JA_TITLE = "ただいまご利用いただけません"
EN_TITLE = "Service temporarily unavailable"


def assert_unavailable_page(resp) -> None:
    assert resp.status_code == 503, resp.get_data(as_text=True)[:500]
    assert resp.headers["Retry-After"] == "60"
    assert resp.headers["Content-Type"].startswith("text/html")
    text = resp.get_data(as_text=True)
    assert JA_TITLE in text and EN_TITLE in text
    assert "Internal Server Error" not in text


def assert_health(resp, code: int, database: str) -> None:
    assert resp.status_code == code, resp.get_data(as_text=True)
    assert resp.get_json()["database"] == database


def _user(app):
    from tests.conftest import Factory

    factory = Factory(app)
    return factory.user("filer", org=factory.org(facility=True), compartments=("T01",))


@pytest.mark.skipif(IS_PG, reason="the SQLite pass covers SQLite; the PostgreSQL pass runs the private cluster test")
def test_sqlite_file_gone(tmp_path):
    from portal import create_app

    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'portal.db'}"
    instance = tmp_path / "instance"
    portal_cli(server_env(url, instance), "init")
    app = create_app(make_settings(instance, url))
    user = _user(app)
    signed_in, anonymous, cookieless = app.test_client(), app.test_client(), app.test_client()
    sign_in(signed_in, user)
    assert signed_in.get("/reports").status_code == 200
    token = csrf_of(anonymous.get("/auth/login").get_data(as_text=True))

    folder.rename(tmp_path / "db-away")
    app.extensions["db_engine"].dispose()  # pooled connections would keep the old file open
    try:
        for path in ("/", "/reports", "/notifications"):
            assert_unavailable_page(signed_in.get(path))
        assert_unavailable_page(signed_in.post("/language", data={"lang": "en", "csrf_token": token}))
        signing_in = {"email": user.email, "password": PASSWORD, "csrf_token": token}
        assert_unavailable_page(anonymous.post("/auth/login", data=signing_in))
        assert_unavailable_page(cookieless.post("/auth/login", data=signing_in))
        assert_health(signed_in.get("/healthz"), 503, "unavailable")
        assert_health(cookieless.get("/healthz"), 503, "unavailable")
        assert signed_in.get("/livez").status_code == 200
        assert signed_in.get("/static/portal.css").status_code == 200
    finally:
        (tmp_path / "db-away").rename(folder)
        app.extensions["db_engine"].dispose()
    # Back: the same cookie is still a signed-in session.
    assert_health(signed_in.get("/healthz"), 200, "ok")
    page = signed_in.get("/reports")
    assert page.status_code == 200 and user.name in page.get_data(as_text=True)


@pytest.mark.postgres_only
def test_postgres_stopped_and_started(tmp_path):
    if server_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("initdb and pg_ctl are missing: CI installs the postgresql package (.ci/run)")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package")
    from portal import create_app

    cluster = PrivateCluster()
    server = app = None
    try:
        cluster.start()
        url = cluster.create_database("portal")
        instance = tmp_path / "instance"
        env = server_env(url, instance)
        portal_cli(env, "init")
        app = create_app(make_settings(instance, url))
        user = _user(app)
        server = Server(env, tmp_path, name="outage")
        signed_in, anonymous, cookieless = server.browser(), server.browser(), server.browser()
        sign_in(signed_in, user)
        assert signed_in.get("/reports").status_code == 200
        token = csrf_of(anonymous.get("/auth/login").get_data(as_text=True))

        cluster.stop()
        for path in ("/", "/reports", "/notifications"):
            assert_unavailable_page(signed_in.get(path))
        signing_in = {"email": user.email, "password": PASSWORD, "csrf_token": token}
        assert_unavailable_page(anonymous.post("/auth/login", data=signing_in))
        assert_unavailable_page(cookieless.post("/auth/login", data=signing_in))
        assert_health(signed_in.get("/healthz"), 503, "unavailable")
        assert_health(cookieless.get("/healthz"), 503, "unavailable")
        assert signed_in.get("/livez").status_code == 200
        log = server.log_text()
        assert "AssertionError" not in log and "Traceback" not in log, log[-3000:]

        cluster.start()
        assert_health(anonymous.get("/healthz"), 200, "ok")
        assert_health(signed_in.get("/healthz"), 200, "ok")
        page = signed_in.get("/reports")
        assert page.status_code == 200 and user.name in page.get_data(as_text=True)

        # A restart between two signed-in requests: the next one's session read meets the
        # broken pooled connection first (it is not pinged: it runs again on a fresh one).
        cluster.stop()
        cluster.start()
        page = signed_in.get("/reports")
        assert page.status_code == 200 and user.name in page.get_data(as_text=True)
        assert "Traceback" not in server.log_text()
    finally:
        if server is not None:
            server.stop()
        if app is not None:
            app.extensions["db_engine"].dispose()
        cluster.remove()
