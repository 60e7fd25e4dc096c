"""Fixtures per concern: the database (SQLite or PostgreSQL, chosen by PORTAL_TEST_DATABASE),
the app, users by role, and a signed-in client. Each test starts from the migrated schema
with the seeded catalogue and nothing else."""
from __future__ import annotations

import os
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal.config import Settings

TEST_DB = os.environ.get("PORTAL_TEST_DATABASE", "sqlite")
IS_PG = TEST_DB.startswith("postgresql")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
# Tables that the migrations seed and tests must keep.
KEEP = {"alembic_version", "technologies", "group_a_countries", "data_keys"}


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + TEST_DB if IS_PG else 'SQLite'}"


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (runs in the PostgreSQL pass of `make test`)")
    for item in items:
        if "postgres_only" in item.keywords and not IS_PG:
            item.add_marker(skip_pg)


def _pg_url(dbname: str) -> str:
    return re.sub(r"/[^/]*$", f"/{dbname}", TEST_DB)


def create_pg_database(name: str) -> str:
    admin = sa.create_engine(_pg_url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("PORTAL_REQUIRE_POSTGRES"):
            raise
        pytest.exit(f"PostgreSQL unreachable at {TEST_DB}: {exc}", returncode=3)
    finally:
        admin.dispose()
    return _pg_url(name)


_CREATED: list[str] = []


def drop_pg_database(name: str) -> None:
    admin = sa.create_engine(_pg_url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The generative tests' count of requests (tests/test_fuzz_routes.py), over all workers."""
    import json

    factory = getattr(config, "_tmp_path_factory", None)
    path = Path(factory.getbasetemp()) / "fuzz-requests.jsonl" if factory is not None else None
    if path is None or not path.exists():
        return
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    statuses: dict[str, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    terminalreporter.write_line(
        f"fuzz: {sum(r['requests'] for r in runs)} generated requests on {runs[0]['database']} "
        f"({runs[0]['examples_per_route']} examples per route), answers {dict(sorted(statuses.items()))}; "
        f"{sum(r['support_requests'] for r in runs)} support requests; details in {path}")


def pytest_sessionfinish(session, exitstatus):
    for name in _CREATED:
        try:
            drop_pg_database(name)
        except Exception:  # noqa: BLE001, S110 - cleanup is best effort
            pass


def fresh_database_url(tmp_path_factory, label: str) -> str:
    if IS_PG:
        # One database per test process, so parallel runs (xdist, or two people) never collide.
        name = f"ttr_{label}_{WORKER}_{os.getpid()}"
        _CREATED.append(name)
        return create_pg_database(name)
    return f"sqlite:///{tmp_path_factory.mktemp(label) / 'portal.db'}"


def make_settings(instance: Path, url: str, **overrides) -> Settings:
    from tests.private_clamd import shared

    scanner = shared()  # this process's private clamd, started once
    base = dict(env="test", instance_path=instance, database_url=url, secret_key="t" * 48,
                argon2_memory_kib=64, argon2_iterations=1, argon2_lanes=1, clamd_socket=scanner.socket,
                clamd_database_dir=scanner.db)
    base.update(overrides)
    return Settings.from_env({}, **base)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    from portal.migrate import upgrade

    url = fresh_database_url(tmp_path_factory, "main")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory):
    from portal.encryption.instance import ensure_instance

    inst = tmp_path_factory.mktemp("instance")
    ensure_instance(Settings.from_env({}, env="test", instance_path=inst, secret_key="t" * 48))
    return inst


@pytest.fixture(scope="session")
def base_app(database_url, instance_dir):
    from portal import create_app

    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for

    app = create_app(make_settings(instance_dir, database_url))
    with app.extensions["db_engine"].begin() as conn:
        sealed.ensure_field_key(conn, keyring_for(app.config["SETTINGS"].keyring_path))
    return app


def _clean(engine) -> None:
    from portal.db import Base
    import portal.models  # noqa: F401

    with engine.begin() as conn:
        if IS_PG:
            conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEEP:
                conn.execute(table.delete())
        if IS_PG:
            conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


@pytest.fixture
def app(base_app):
    engine = base_app.extensions["db_engine"]
    _clean(engine)
    base_app.config["SETTINGS"].https = False
    yield base_app
    _clean(engine)


@pytest.fixture
def db_session(app):
    from portal import db

    with app.app_context():
        yield db.session()


@pytest.fixture
def client(app):
    return app.test_client()


# ---------------------------------------------------------------- factories

PASSWORD = "correct horse battery staple 42"


class Factory:
    def __init__(self, app):
        self.app = app
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def org(self, name: str | None = None, *, government: bool = False, facility: bool | None = None):
        from portal import db
        from portal.orgs.corporate_number import check_digit
        from portal.orgs.models import Organisation

        n = self._next()
        base = f"{n + (500 if government else 0):012d}"
        number = f"{check_digit(base)}{base}"
        with self.app.app_context():
            s = db.session()
            org = Organisation(name=name or f"Org {n}", corporate_number=number, address="東京都",
                               is_government=government)
            if facility is not None:
                today = date.today()
                org.facility_clearance_from = today - timedelta(days=30)
                org.facility_clearance_until = today + timedelta(days=365) if facility else today - timedelta(days=1)
            s.add(org)
            s.commit()
            return org

    def user(self, role: str, *, org=None, level: str | None = "confidential", compartments=("T01",),
             expires_on: date | None = None, totp: bool = False, password: str = PASSWORD, email: str | None = None):
        from portal import db
        from portal.access.levels import Role
        from portal.access.models import Clearance
        from portal.auth import totp as totp_mod
        from portal.auth.models import User
        from portal.auth.passwords import Argon2Params, hash_password
        from portal.catalogue.models import Technology
        from portal.db import utcnow

        is_gov = Role(role).is_government
        if org is None:
            org = self.org(government=is_gov, facility=None if is_gov else True)
        n = self._next()
        with self.app.app_context():
            s = db.session()
            u = User(email=email or f"{role}{n}@example.jp", name=f"Test {role} {n}", role=role,
                     organisation_id=org.id, password_hash=hash_password(password, Argon2Params(64, 1, 1)))
            if totp or is_gov:
                u.totp_secret = totp_mod.new_secret()
                u.totp_enabled_at = utcnow()
            s.add(u)
            s.flush()
            if is_gov:  # as the administrators' service does when it creates an account
                from portal.dialogue import unread

                unread.rebuild_user(s, u.id)
            if level is not None:
                techs = list(s.execute(sa.select(Technology).where(Technology.code.in_(list(compartments)))).scalars())
                s.add(Clearance(user_id=u.id, level=level, expires_on=expires_on or date.today() + timedelta(days=3650),
                                reason="test", compartments=techs))
            s.commit()
            s.refresh(u)
            u.totp_secret  # a deferred column: load it before the user is detached
            s.expunge(u)
            return u


@pytest.fixture
def factory(app):
    return Factory(app)


# What stands before an error message under a field on an English page (a Japanese one has ＊).
ERROR_MARK = '<span class="visually-hidden">Error: </span>'


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def current_code(secret: str, offset_steps: int = 0) -> str:
    from portal.auth.totp import code_at

    return code_at(secret, time.time() + offset_steps * 30)


def sign_in(client, user, password: str = PASSWORD, follow: bool = True):
    """Drive the sign-in pages as a person would; returns the final response."""
    page = client.get("/auth/login")
    resp = client.post("/auth/login", data={"email": user.email, "password": password,
                                            "csrf_token": csrf_of(page.get_data(as_text=True))})
    if resp.status_code == 302 and resp.location.endswith("/auth/2fa"):
        page = client.get("/auth/2fa")
        resp = client.post("/auth/2fa", data={"code": current_code(user.totp_secret),
                                              "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    return client.get(resp.location) if follow else resp


@pytest.fixture
def signed_in(client):
    def _sign_in(user, **kw):
        sign_in(client, user, **kw)
        return client

    return _sign_in


def post_form(client, url: str, data: dict, *, page: str | None = None):
    """POST with the CSRF token taken from ``page`` (default: the same URL)."""
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={**data, "csrf_token": csrf_of(html)})


def audit_events(app, action: str | None = None):
    from portal import db
    from portal.audit.models import AuditEvent

    with app.app_context():
        stmt = sa.select(AuditEvent).order_by(AuditEvent.seq)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        rows = list(db.session().execute(stmt).scalars())
        db.session().expunge_all()
        return rows


def ja(msgid: str, **params) -> str:
    """The Japanese text a page shows for ``msgid`` (HTML-escaped as the template renders it).
    Fails if the catalogue has no translation, so a test never passes on English fallbacks."""
    from babel.support import Translations
    from markupsafe import escape

    tr = Translations.load(str(Path(__file__).resolve().parent.parent / "portal" / "translations"), ["ja"])
    text = tr.ugettext(msgid)
    assert text != msgid, f"no Japanese translation for {msgid!r}"
    return str(escape(text % params if params else text))


@pytest.fixture(autouse=True)
def _field_cipher_restored():
    """The field cipher is process-wide (portal.encryption.sealed): a test that builds an app of
    its own (a private database, a restored backup) repoints it; the next test gets it back."""
    from portal.encryption import sealed

    before = sealed._cipher
    yield
    if sealed._cipher is not before:
        # Repointed, or reset on purpose (a test that replaced the field key): the same database
        # and keyring as before, with no cached key that may no longer exist.
        sealed._cipher = None if before is None else sealed.FieldCipher(before.keyring, before.url)
