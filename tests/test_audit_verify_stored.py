"""Issue 14 item 8: `portal audit verify` checks the chain against the newest signed checkpoint
stored in the database (a trail truncated or rewritten below it fails), names the checkpoint it
checked, and says what only a checkpoint kept outside can prove; exports are written 0600.
Driven through the `portal` command on the test database (SQLite or PostgreSQL)."""
from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import sqlalchemy as sa

from tests.conftest import IS_PG, sign_in
from tests.test_audit_export import _rewrite_history

def portal(app, *args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    """The `portal` command, in this process (each start of the console script costs seconds;
    tests/test_cli.py drives the script itself), on the test database and instance."""
    from click.testing import CliRunner

    from portal.cli import main

    settings = app.config["SETTINGS"]
    env = {k: None for k in os.environ if k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(settings.instance_path), PORTAL_DATABASE_URL=settings.database_url,
               PORTAL_ENV="production")
    old = os.umask(umask) if umask is not None else None
    try:
        r = CliRunner().invoke(main, list(args), env=env)
    finally:
        if old is not None:
            os.umask(old)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


@pytest.fixture
def trail(app, factory):
    """A few sign-ins, a checkpoint stored in the database (as the daily job signs one), then more events."""
    from portal import db
    from portal.audit import checkpoints

    for _ in range(3):
        sign_in(app.test_client(), factory.user("filer"))
    with app.app_context():
        cp = checkpoints.make(db.session(), checkpoints.signing_key(str(app.config["SETTINGS"].audit_key_path)), "daily")
        db.session().commit()
        doc = checkpoints.document(cp, checkpoints.signing_key(str(app.config["SETTINGS"].audit_key_path)).public_key_pem())
        info = {"id": cp.id, "seq": cp.seq, "doc": doc}
    sign_in(app.test_client(), factory.user("filer"))
    return info


def _sql(app, *statements: str) -> None:
    from portal import db

    with app.app_context():
        s = db.session()
        if IS_PG:
            s.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for stmt in statements:
            s.execute(sa.text(stmt))
        if IS_PG:
            s.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        s.commit()


def test_verify_checks_the_newest_stored_checkpoint_and_names_it(app, trail):
    r = portal(app, "audit", "verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: ")
    assert f"stored checkpoint #{trail['id']} (daily, signed " in r.stdout
    assert f"the trail extends the checkpoint at event {trail['seq']}" in r.stdout


def test_a_trail_truncated_below_a_stored_checkpoint_fails(app, trail):
    # Cutting the tail leaves a chain that is consistent in itself...
    _sql(app, f"DELETE FROM audit_events WHERE seq > {trail['seq'] - 2}")
    from portal import db
    from portal.audit.verify import verify_chain

    with app.app_context(), db.engine().connect() as conn:
        assert verify_chain(conn).ok
    # ...but not with the checkpoint the database still holds.
    r = portal(app, "audit", "verify")
    assert r.returncode == 1
    assert f"STORED CHECKPOINT FAILED (#{trail['id']}, daily" in r.stderr and "truncated" in r.stderr
    assert "ok:" not in r.stdout


def test_a_rewrite_with_recomputed_hashes_below_a_stored_checkpoint_fails(app, trail):
    _rewrite_history(app)
    r = portal(app, "audit", "verify")
    assert r.returncode == 1 and "rewritten" in r.stderr


def test_a_forged_stored_checkpoint_fails(app, trail):
    from portal import db
    from portal.audit.models import AuditCheckpoint, AuditEvent

    first = sa.select(AuditEvent.hash).where(AuditEvent.seq == 1).scalar_subquery()
    with app.app_context():  # the attacker moves the checkpoint down to an early event: cannot re-sign it
        db.session().execute(sa.update(AuditCheckpoint).values(seq=1, hash=first))
        db.session().commit()
    r = portal(app, "audit", "verify")
    assert r.returncode == 1 and "signature is not valid" in r.stderr


def test_deleting_the_checkpoint_rows_too_is_caught_only_by_a_kept_checkpoint(app, trail, tmp_path):
    """What the stored check cannot prove: an attacker who truncates the trail and deletes the
    checkpoint rows gets "ok" with a warning; the checkpoint file an auditor kept fails."""
    kept = tmp_path / "checkpoint.json"
    kept.write_text(json.dumps(trail["doc"]), encoding="utf-8")
    before = portal(app, "audit", "verify", "--checkpoint", str(kept))
    assert before.returncode == 0 and "checkpoint file: the trail extends" in before.stdout
    _sql(app, f"DELETE FROM audit_events WHERE seq > {trail['seq'] - 2}", "DELETE FROM audit_checkpoints")
    r = portal(app, "audit", "verify")
    assert r.returncode == 0 and "stored checkpoint: none in the database" in r.stdout
    r = portal(app, "audit", "verify", "--checkpoint", str(kept))
    assert r.returncode == 1 and "CHECKPOINT FAILED" in r.stderr and "truncated" in r.stderr


def test_export_and_checkpoint_files_are_owner_only(app, trail, tmp_path):
    out = tmp_path / "trail.jsonl"
    out.write_text("an older file, world-readable")
    out.chmod(0o644)
    r = portal(app, "audit", "export", "--out", str(out), umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().count(b"\n") >= 5 and b"older file" not in out.read_bytes()
    cp = tmp_path / "cp.json"
    r = portal(app, "audit", "checkpoint", "--out", str(cp), umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(cp.stat().st_mode) == 0o600 and json.loads(cp.read_text())["payload"]["seq"] >= trail["seq"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]
