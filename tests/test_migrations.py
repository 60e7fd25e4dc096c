"""Migrations are the only way the schema changes (issue 2 item 5): on a fresh database head
equals the models, downgrade-then-upgrade round-trips, constraint names follow the naming
convention, and the catalogue is seeded."""
from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import portal.models  # noqa: F401  (fills the metadata)
from portal.catalogue.seed import SCHEME_START
from portal.db import Base, make_engine
from portal.migrate import config, downgrade, upgrade
from tests.conftest import IS_PG, fresh_database_url


@pytest.fixture
def fresh_url(tmp_path_factory):
    return fresh_database_url(tmp_path_factory, "mig")


@pytest.fixture
def engine_of():
    engines = []

    def make(url):
        engines.append(make_engine(url))
        return engines[-1]

    yield make
    for e in engines:
        e.dispose()


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


AUDIT_TRIGGERS = {("audit_events", "audit_events_no_update_delete", "O"), ("audit_events", "audit_events_no_truncate", "O"),
                  ("audit_pending", "audit_pending_seal", "O")}


def _pg_triggers(engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname IN ('audit_events', 'audit_pending') AND NOT t.tgisinternal"
        )).all())


def _pg_functions(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT proname FROM pg_proc WHERE proname IN ('audit_events_append_only', 'audit_seal')")).scalars())


def test_one_linear_history():
    script = ScriptDirectory.from_config(config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_fresh_database_is_empty_before_upgrade(fresh_url, engine_of):
    engine = engine_of(fresh_url)
    assert _tables(engine) == set()
    # The comparison sees a difference when there is one (so an empty diff below means something).
    kinds = {d[0] for d in _diff(engine) if isinstance(d, tuple)}
    assert "add_table" in kinds


def test_head_equals_models(fresh_url, engine_of):
    upgrade(fresh_url)
    engine = engine_of(fresh_url)
    assert _diff(engine) == []
    assert _tables(engine) == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(config(fresh_url)).get_current_head()
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_downgrade_to_base_then_upgrade_round_trips(fresh_url, engine_of):
    upgrade(fresh_url)
    downgrade(fresh_url, "base")
    engine = engine_of(fresh_url)
    assert _tables(engine) == {"alembic_version"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 0
    if IS_PG:
        assert _pg_functions(engine) == set()

    upgrade(fresh_url)
    engine.dispose()
    assert _diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM technologies")).scalar_one() == 19
    if IS_PG:
        assert _pg_triggers(engine) == AUDIT_TRIGGERS
        assert _pg_functions(engine) == {"audit_events_append_only", "audit_seal"}


def test_catalogue_has_15_original_and_4_later_technologies(fresh_url, engine_of):
    upgrade(fresh_url)
    engine = engine_of(fresh_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT code, name_ja, name_en, effective_from, effective_until FROM technologies ORDER BY code"
        )).all()
    assert len(rows) == 19
    assert [r.code for r in rows] == [f"T{n:02d}" for n in range(1, 20)]
    assert all(r.name_ja and r.name_en and r.effective_until is None for r in rows)
    dates = [date.fromisoformat(r.effective_from) if isinstance(r.effective_from, str) else r.effective_from
             for r in rows]  # raw SQL on SQLite returns text
    first, later = dates[:15], dates[15:]
    assert set(first) == {SCHEME_START}
    assert len(later) == 4 and min(later) > max(first)


def _expected_names(table: sa.Table) -> dict[str, set[str]]:
    uq = {f"uq_{table.name}_{next(iter(c.columns)).name}" for c in table.constraints
          if isinstance(c, sa.UniqueConstraint)}
    uq |= {f"uq_{table.name}_{c.name}" for c in table.columns if c.unique}
    fk = {f"fk_{table.name}_{f.parent.name}_{f.column.table.name}" for f in table.foreign_keys}
    return {"uq": uq, "fk": fk}


def test_constraint_names_follow_the_naming_convention(fresh_url, engine_of):
    upgrade(fresh_url)
    insp = sa.inspect(engine_of(fresh_url))
    checked = 0
    for table in Base.metadata.sorted_tables:
        name = table.name
        assert insp.get_pk_constraint(name)["name"] == f"pk_{name}"
        expected = _expected_names(table)
        uniques = {u["name"] for u in insp.get_unique_constraints(name)}
        assert uniques == expected["uq"], name
        fks = {f["name"] for f in insp.get_foreign_keys(name)}
        assert fks == expected["fk"], name
        for fk_name in fks:
            assert re.fullmatch(rf"fk_{name}_\w+", fk_name)
        for ix in insp.get_indexes(name):
            if ix.get("duplicates_constraint"):  # PostgreSQL lists a UNIQUE constraint's index too
                continue
            assert ix["name"].startswith("ix_"), (name, ix["name"])
        checked += 1
    assert checked == len(Base.metadata.sorted_tables) >= 10


@pytest.mark.postgres_only
def test_audit_triggers_exist_after_upgrade(fresh_url, engine_of):
    """Append-only audit_events; appends sealed at commit by a deferred constraint trigger."""
    upgrade(fresh_url)
    engine = engine_of(fresh_url)
    assert _pg_triggers(engine) == AUDIT_TRIGGERS  # "O": enabled
    with engine.connect() as conn:
        deferred = conn.execute(sa.text(
            "SELECT tgdeferrable AND tginitdeferred FROM pg_trigger WHERE tgname = 'audit_pending_seal'")).scalar_one()
    assert deferred


def _insert(conn, meta: sa.MetaData, table: str, **values) -> int:
    """A row with every required column filled by type (the test sets what matters)."""
    t = meta.tables[table]
    row = dict(values)
    for col in t.columns:
        if col.name in row or col.nullable or col.server_default is not None or col.primary_key:
            continue
        py = col.type.python_type
        row[col.name] = {str: "x", int: 0, bool: False, bytes: b"x"}.get(py) if py not in (date,) else date(2026, 1, 5)
        if row[col.name] is None:
            from datetime import datetime, timezone

            row[col.name] = datetime(2026, 1, 5, tzinfo=timezone.utc)
    return conn.execute(t.insert().values(**row)).inserted_primary_key[0]


def test_0009_gives_existing_material_the_labels_it_was_read_under(fresh_url, engine_of):
    """Rule 7's migration: existing versions, messages, files and informs keep the readers
    they had (the case's technology and classification); a case whose versions name two
    technologies carries both; a report's files submitted with a version are frozen."""
    from datetime import datetime, timezone

    upgrade(fresh_url, "0008")
    engine = engine_of(fresh_url)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        tech = dict(conn.execute(sa.text("SELECT code, id FROM technologies")).all())
        org = _insert(conn, meta, "organisations", name="A", corporate_number="1180301018771", address="x")
        user = _insert(conn, meta, "users", email="a@example.jp", name="A", role="filer", organisation_id=org,
                       password_hash="x")
        submitted = datetime(2026, 3, 2, tzinfo=timezone.utc)
        r = _insert(conn, meta, "reports", organisation_id=org, created_by_id=user, status="under_review",
                    technology_id=tech["T14"], classification="confidential", version_count=2,
                    submitted_at=submitted)
        draft = _insert(conn, meta, "reports", organisation_id=org, created_by_id=user, status="draft",
                        technology_id=tech["T03"], classification="restricted", version_count=0)
        for n, code in ((1, "T01"), (2, "T14")):
            _insert(conn, meta, "report_versions", report_id=r, number=n, content=b"{}", technology_id=tech[code],
                    submitted_by_id=user)
        m = _insert(conn, meta, "messages", report_id=r, channel="internal", author_id=user, body=b"x",
                    classification="csi")
        for uid, message, created in (("a1", None, datetime(2026, 3, 1, tzinfo=timezone.utc)),
                                      ("a2", None, datetime(2026, 3, 5, tzinfo=timezone.utc)),
                                      ("a3", m, datetime(2026, 3, 1, tzinfo=timezone.utc))):
            _insert(conn, meta, "attachments", uid=uid, report_id=r, message_id=message, filename="f", content_type="x",
                    kind="pdf", size=1, sha256="0", classification="restricted", blob_key=uid, kek_id="k",
                    wrapped_dek=b"x", uploaded_by_id=user, created_at=created)
        _insert(conn, meta, "informs", report_id=r, status="draft", legal_basis="x", reasons=b"x", conditions=b"x",
                internal_rationale=b"x", rationale_classification="csi", drafted_by_id=user)
    # Up to the revision before 0012, which re-seals sealed values (these are placeholders).
    upgrade(fresh_url, "0011")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT compartments FROM reports WHERE id = :id"), {"id": r}).scalar() == "T01 T14"
        assert conn.execute(sa.text("SELECT compartments FROM reports WHERE id = :id"), {"id": draft}).scalar() == ""
        assert set(conn.execute(sa.text("SELECT classification FROM report_versions")).scalars()) == {"confidential"}
        assert conn.execute(sa.text("SELECT compartments FROM messages")).scalar() == "T01 T14"
        files = dict(conn.execute(sa.text("SELECT uid, version FROM attachments")).all())
        assert files == {"a1": 2, "a2": None, "a3": None}
        assert set(conn.execute(sa.text("SELECT compartments FROM attachments")).scalars()) == {"T01 T14"}
        assert conn.execute(sa.text("SELECT classification || '/' || compartments FROM informs")).scalar() == \
            "confidential/T01 T14"
    downgrade(fresh_url, "0008")
    upgrade(fresh_url, "0011")
