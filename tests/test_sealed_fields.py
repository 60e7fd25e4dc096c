"""Sealed fields are bound to their row (DESIGN §7): the counterparty's name is sealed like the
others and never stored in clear; a ciphertext moved to another row or column does not open,
and the page shows the portal's error page rather than another row's content; migration 0012
re-seals what an older database holds."""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import IS_PG, fresh_database_url, ja, sign_in
from tests.reports_helpers import fill_all, new_report, submit


def _counterparty() -> str:
    # New each run: the WAL of an earlier run must not be what a search finds.
    return f"Sealed Counterparty {secrets.token_hex(6)} K.K."


def _filer(app, factory):
    client = app.test_client()
    org = factory.org(facility=True)
    sign_in(client, factory.user("filer", org=org))
    return client


def _file(client, counterparty: str, *, send: bool = True) -> int:
    rid = new_report(client)
    fill_all(client, rid, {"counterparty": {"counterparty_name": counterparty}})
    if send:
        assert submit(client, rid).status_code == 302
    return rid


def _raw(app, sql: str, **params):
    with app.extensions["db_engine"].begin() as conn:
        return conn.execute(sa.text(sql), params)


def _database_text(app, database_url: str) -> bytes:
    """Everything the database holds as files or a dump would show it."""
    if IS_PG:
        if shutil.which("pg_dump"):
            return subprocess.run(["pg_dump", "--no-owner", database_url], capture_output=True, check=True).stdout
        # No pg_dump: every column of every table as text.
        out = []
        with app.extensions["db_engine"].connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                out += [repr(tuple(r)).encode() for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
        return b"\n".join(out)
    path = Path(database_url[len("sqlite:///"):])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # the file, -wal and -shm


def test_the_counterparty_name_is_sealed_and_still_shown(app, factory, database_url):
    client = _filer(app, factory)
    name = _counterparty()
    rid = _file(client, name)
    _file(client, _counterparty(), send=False)  # a draft too: its title is sealed from the start

    found = _database_text(app, database_url)
    assert name.encode() not in found
    assert name.encode("utf-16-le") not in found
    stored = _raw(app, "SELECT title FROM reports WHERE id = :id", id=rid).scalar_one()
    assert isinstance(stored, (bytes, memoryview)) and len(bytes(stored)) > len(name)

    assert name in client.get("/reports").get_data(as_text=True)  # the list opens its rows' titles
    assert name in client.get(f"/reports/{rid}").get_data(as_text=True)


def test_a_list_opens_each_title_with_its_own_row(app, factory):
    client = _filer(app, factory)
    names = [_counterparty() for _ in range(3)]
    for n in names:
        _file(client, n, send=False)
    page = client.get("/reports").get_data(as_text=True)
    assert all(n in page for n in names)


def _moved(app, factory, column_sql: str, *, send: bool = True):
    """Two reports, filed or drafts; ``column_sql`` moves a ciphertext (raw SQL, as an intruder
    with database access would). Returns the client, the victim row and the other row's name."""
    client = _filer(app, factory)
    other_name, victim_name = _counterparty(), _counterparty()
    other = _file(client, other_name, send=send)
    victim = _file(client, victim_name, send=send)
    _raw(app, column_sql, other=other, victim=victim)
    return client, victim, other_name


def _is_error_page(resp, *leaked: str) -> None:
    body = resp.get_data(as_text=True)
    assert resp.status_code == 500
    assert ja("Something went wrong") in body
    for text in leaked:
        assert text not in body


def test_a_title_moved_to_another_row_does_not_open(app, factory, caplog):
    client, victim, other_name = _moved(
        app, factory, "UPDATE reports SET title = (SELECT title FROM reports WHERE id = :other) WHERE id = :victim")
    _is_error_page(client.get("/reports"), other_name)
    # The operator's log names the damaged place, never its content.
    assert f"reports.title of row {victim} does not open" in caplog.text
    assert other_name not in caplog.text


def test_a_working_copy_moved_to_another_row_does_not_open(app, factory):
    client, victim, other_name = _moved(
        app, factory, "UPDATE reports SET draft = (SELECT draft FROM reports WHERE id = :other) WHERE id = :victim",
        send=False)
    _is_error_page(client.get(f"/reports/{victim}"), other_name)
    _is_error_page(client.get(f"/reports/{victim}/edit/counterparty"), other_name)


def test_a_submitted_version_moved_to_another_row_does_not_open(app, factory):
    client, victim, other_name = _moved(
        app, factory, "UPDATE report_versions SET content = (SELECT content FROM report_versions"
                      " WHERE report_id = :other) WHERE report_id = :victim")
    _is_error_page(client.get(f"/reports/{victim}/versions/1"), other_name)


def test_a_ciphertext_moved_to_another_column_does_not_open(app, factory):
    from portal import db
    from portal.encryption.sealed import SealedFieldError
    from portal.reports.models import Report

    client, victim, _ = _moved(app, factory, "UPDATE reports SET title = draft WHERE id = :victim")
    _is_error_page(client.get("/reports"))
    with app.app_context():
        report = db.session().get(Report, victim)
        with pytest.raises(SealedFieldError, match=f"reports.title of row {victim}"):
            report.title
        assert json.loads(report.draft)["counterparty_name"]  # the column it came from still opens


def test_text_cannot_be_written_to_a_sealed_column():
    from portal.encryption.sealed import Ciphertext

    with pytest.raises(TypeError, match="ciphertext only"):
        Ciphertext().process_bind_param("ABC Electronics", None)


def test_a_new_row_writes_no_plaintext_and_one_update(app, factory):
    """The INSERT carries a placeholder; the ciphertext follows in one UPDATE of the same
    flush, naming the new key. No statement carries the text."""
    from portal import db
    from portal.dialogue.models import Message
    from tests.test_reports_scale import count_queries

    client = _filer(app, factory)
    rid = _file(client, _counterparty())
    text = f"message {secrets.token_hex(6)}"
    engine = app.extensions["db_engine"]
    seen: list = []

    def _params(conn, cursor, statement, parameters, context, executemany):
        seen.append(repr(parameters))

    sa.event.listen(engine, "before_cursor_execute", _params)
    try:
        with app.app_context(), count_queries(engine) as c:
            s = db.session()
            author = s.execute(sa.text("SELECT created_by_id FROM reports WHERE id = :id"), {"id": rid}).scalar_one()
            m = Message(report_id=rid, channel="external", author_id=author, body=text, classification="restricted")
            s.add(m)
            s.commit()
            mid = m.id
            assert m.body == text
    finally:
        sa.event.remove(engine, "before_cursor_execute", _params)
    assert not any(text in p for p in seen)
    writes = [st.split()[0] for st in c["statements"] if "messages" in st and not st.startswith("SELECT")]
    assert writes == ["INSERT", "UPDATE"], c["statements"]
    with app.app_context():
        db.session().expire_all()
        assert db.session().get(Message, mid).body == text


def test_a_row_whose_key_is_given_is_sealed_in_its_insert(app, factory):
    from portal import db
    from portal.reports.models import Report
    from tests.test_reports_scale import count_queries

    org = factory.org(facility=True)
    user = factory.user("filer", org=org)
    name = _counterparty()
    rid = 10_000_000 + secrets.randbelow(1_000_000)  # far above what the sequence hands out
    with app.app_context(), count_queries(app.extensions["db_engine"]) as c:
        s = db.session()
        s.add(Report(id=rid, organisation_id=org.id, created_by_id=user.id, title=name))
        s.commit()
    writes = [st.split()[0] for st in c["statements"] if "reports" in st and not st.startswith("SELECT")]
    assert writes == ["INSERT"], c["statements"]
    stored = bytes(_raw(app, "SELECT title FROM reports WHERE id = :id", id=rid).scalar_one())
    assert Report.title.open(rid, stored) == name
    with app.app_context():
        r = db.session().get(Report, rid)
        assert (r.title, r.draft) == (name, "{}")  # the default working copy is sealed too


def test_an_unchanged_value_is_not_sealed_again(app, factory):
    from portal import db
    from portal.reports.models import Report

    client = _filer(app, factory)
    rid = _file(client, _counterparty(), send=False)
    before = bytes(_raw(app, "SELECT title FROM reports WHERE id = :id", id=rid).scalar_one())
    with app.app_context():
        s = db.session()
        r = s.get(Report, rid)
        r.title = r.title
        s.commit()
    assert bytes(_raw(app, "SELECT title FROM reports WHERE id = :id", id=rid).scalar_one()) == before


def test_the_registry_lists_every_sealed_column():
    import portal.models  # noqa: F401
    from portal.encryption import registry

    assert set(registry.sealed_columns()) >= {
        ("reports", "title"), ("reports", "draft"), ("report_versions", "content"), ("messages", "body"),
        ("users", "totp_secret"), ("informs", "reasons"), ("informs", "conditions"), ("informs", "internal_rationale")}


# ---------------------------------------------------------------- migration 0012

PREVIOUS = "0011"  # the revision before the re-seal


@pytest.fixture
def old_database(tmp_path_factory, base_app, monkeypatch):
    """A database at the revision before 0012 holding sealed values as that code wrote them
    (associated data: the column name) and counterparty names in clear. The field cipher
    points at it for the test."""
    from crypto import new_dek, seal
    from portal.db import make_engine
    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for
    from portal.migrate import upgrade
    from tests.test_migrations import _insert

    url = fresh_database_url(tmp_path_factory, "reseal")
    upgrade(url, PREVIOUS)
    keyring = keyring_for(base_app.config["SETTINGS"].keyring_path)
    engine = make_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    values: dict = {}
    with engine.begin() as conn:
        # The field key as `portal init` made it before the lease tables existed (0013).
        kek_id, wrapped_key = keyring.wrap(new_dek())
        conn.execute(sa.text("INSERT INTO data_keys (purpose, kek_id, wrapped, created_at) "
                             "VALUES (:p, :k, :w, CURRENT_TIMESTAMP)"),
                     {"p": sealed.FIELD_PURPOSE, "k": kek_id, "w": wrapped_key})
        kid, kek, wrapped = conn.execute(sa.text("SELECT id, kek_id, wrapped FROM data_keys")).one()
        dek = keyring.unwrap(kek, bytes(wrapped))

        def old(table: str, column: str, text: str) -> bytes:
            return kid.to_bytes(4, "big") + seal(dek, text, f"{table}.{column}".encode())

        tech = conn.execute(sa.text("SELECT id FROM technologies WHERE code = 'T01'")).scalar_one()
        org = _insert(conn, meta, "organisations", name="A", corporate_number="1180301018771", address="x")
        user = _insert(conn, meta, "users", email="a@example.jp", name="A", role="reviewer", organisation_id=org,
                       password_hash="x", totp_secret=old("users", "totp_secret", "JBSWY3DPEHPK3PXP"))
        values["user"] = (user, "JBSWY3DPEHPK3PXP")
        # More reports than one batch of the migration, so it pages.
        now = datetime.now(timezone.utc)
        conn.execute(meta.tables["reports"].insert(), [
            {"organisation_id": org, "created_by_id": user, "status": "submitted", "technology_id": tech,
             "classification": "restricted", "version_count": 1, "paused_days": 0, "created_at": now,
             "updated_at": now, "title": f"相手方 {i}",
             "draft": old("reports", "draft", json.dumps({"counterparty_name": f"相手方 {i}"}))}
            for i in range(1203)])
        ids = list(conn.execute(sa.text("SELECT id FROM reports ORDER BY id")).scalars())
        values["reports"] = {rid: f"相手方 {i}" for i, rid in enumerate(ids)}
        first, second = ids[0], ids[1]
        values["version"] = (_insert(conn, meta, "report_versions", report_id=first, number=1, technology_id=tech,
                                     submitted_by_id=user, content=old("report_versions", "content", "v1")), "v1")
        values["message"] = (_insert(conn, meta, "messages", report_id=first, channel="internal", author_id=user,
                                     classification="restricted", body=old("messages", "body", "本文")), "本文")
        values["inform"] = _insert(conn, meta, "informs", report_id=second, status="draft", legal_basis="x",
                                   reasons=old("informs", "reasons", "理由"), conditions=old("informs", "conditions", ""),
                                   internal_rationale=old("informs", "internal_rationale", "内部"),
                                   rationale_classification="restricted", drafted_by_id=user)
    engine.dispose()
    monkeypatch.setattr(sealed, "_cipher", None)
    sealed.configure(keyring, url)
    return url, keyring, values


def _read_back(url: str, values: dict) -> None:
    from sqlalchemy.orm import Session

    import portal.models  # noqa: F401
    from portal.auth.models import User
    from portal.db import make_engine
    from portal.dialogue.models import Message
    from portal.informs.models import Inform
    from portal.reports.models import Report, ReportVersion

    engine = make_engine(url)
    try:
        with Session(engine) as s:
            titles = dict(s.execute(sa.select(Report.id, Report._title)).all())
            assert {rid: Report.title.open(rid, ct) for rid, ct in titles.items()} == values["reports"]
            for r in s.execute(sa.select(Report).where(Report.id.in_(list(values["reports"])[:3]))).scalars():
                assert json.loads(r.draft)["counterparty_name"] == values["reports"][r.id] == r.title
            uid, secret = values["user"]
            assert s.get(User, uid).totp_secret == secret
            vid, content = values["version"]
            assert s.get(ReportVersion, vid).content == content
            mid, body = values["message"]
            assert s.get(Message, mid).body == body
            inform = s.get(Inform, values["inform"])
            assert (inform.reasons, inform.conditions, inform.internal_rationale) == ("理由", "", "内部")
    finally:
        engine.dispose()


def test_migration_reseals_every_value_bound_to_its_row(old_database):
    from portal.db import make_engine
    from portal.encryption.sealed import SealedFieldError
    from portal.migrate import downgrade, upgrade
    from portal.reports.models import Report

    url, keyring, values = old_database
    upgrade(url, keyring=keyring)
    _read_back(url, values)

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM reports WHERE title LIKE '%相手方%'")).scalar() == 0
            first, second = list(values["reports"])[:2]
            moved = conn.execute(sa.text("SELECT title FROM reports WHERE id = :id"), {"id": first}).scalar_one()
        with pytest.raises(SealedFieldError):
            Report.title.open(second, moved)

        # Down and up again: the previous revision's formats, then this one's, nothing lost.
        downgrade(url, PREVIOUS, keyring=keyring)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT title FROM reports WHERE id = :id"), {"id": second}).scalar_one() \
                == values["reports"][second]
        upgrade(url, keyring=keyring)
        _read_back(url, values)
    finally:
        engine.dispose()


def test_migration_without_the_keyring_says_so_and_changes_nothing(old_database):
    from portal.db import make_engine
    from portal.migrate import upgrade

    url, _keyring, values = old_database
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            before = conn.execute(sa.text("SELECT id, title, draft FROM reports ORDER BY id")).all()
        with pytest.raises(RuntimeError, match="needs the keyring"):
            upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == PREVIOUS
            assert conn.execute(sa.text("SELECT id, title, draft FROM reports ORDER BY id")).all() == before
    finally:
        engine.dispose()
