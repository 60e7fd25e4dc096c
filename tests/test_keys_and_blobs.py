"""Rotate, re-wrap, retire and still decrypt everything; the blob check finds orphans."""
from __future__ import annotations

import os
import shutil
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from crypto import KeyInUse
from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report
from tests.test_attachments import PDF, _attachments, upload


@pytest.fixture
def own_keyring(app, tmp_path):
    """A copy of the keyring for this test, so rotation does not leak into other tests."""
    from portal.encryption import opener as keys
    from portal.encryption import sealed

    s = app.config["SETTINGS"]
    old, old_store = s.keyring_path, (s.blob_store, s.blob_dir)
    copy = tmp_path / "keyring.json"
    shutil.copy2(old, copy)
    os.chmod(copy, 0o600)
    s.keyring_path = copy
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    sealed.reset()
    sealed.configure(keys.keyring_for(copy), s.database_url)
    yield copy
    s.keyring_path = old
    s.blob_store, s.blob_dir = old_store
    # This test's keyring may have re-wrapped the shared field key: give it back a fresh one.
    # Its retirement marks name KEKs the shared keyring still holds (the copy had the same ids).
    engine = app.extensions["db_engine"]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM kek_retirements"))
        conn.execute(sa.text("DELETE FROM kek_leases"))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM data_keys"))
        sealed.ensure_field_key(conn, keys.keyring_for(old))
    sealed.reset()
    sealed.configure(keys.keyring_for(old), s.database_url)


def _cli(app, group, *args):
    """A command of ``portal`` run in this test's app (``main`` would build the app from the
    environment): its output, exception and exit code."""
    from portal.cli import main

    runner = CliRunner()
    with app.app_context():
        return runner.invoke(main.commands[group], list(args), catch_exceptions=True)


def test_rotate_rewrap_retire_and_everything_still_decrypts(app, factory, own_keyring):
    from portal import db
    from portal.encryption import rotation
    from portal.encryption.opener import keyring_for
    from portal.reports.models import Report

    client = app.test_client()
    org = factory.org(facility=True)
    sign_in(client, factory.user("filer", org=org))
    rid = new_report(client)
    fill_all(client, rid)
    for i in range(3):
        assert upload(client, rid, PDF + bytes([i]), f"f{i}.pdf").status_code == 302
    kr = keyring_for(own_keyring)
    old = kr.active_id
    new = kr.rotate()
    assert new != old and kr.active_id == new
    with app.app_context():
        s = db.session()
        assert rotation.pending(s, new) == 4  # three attachments and the field key
        with pytest.raises(KeyInUse):
            rotation.retire(s, kr, old)
        assert rotation.rewrap(s, kr, batch=2) == 4
        assert rotation.rewrap(s, kr) == 0  # idempotent
        rotation.retire(s, kr, old)
        assert old not in kr.ids()
    for i, att in enumerate(_attachments(app)):
        assert att.kek_id == new
        assert client.get(f"/attachments/{att.id}").data == PDF + bytes([i])
    # The sealed draft still opens with a fresh cipher (no cached key).
    from portal.encryption import sealed

    sealed.reset()
    sealed.configure(kr, app.config["SETTINGS"].database_url)
    with app.app_context():
        assert "ABC Electronics" in db.session().get(Report, rid).draft


def test_blob_check_finds_orphans_and_missing_blobs(app, factory, own_keyring, tmp_path):
    from portal import db
    from portal.attachments.services import store_for
    from portal.encryption import blobcheck
    from portal.encryption.opener import keyring_for

    client = app.test_client()
    sign_in(client, factory.user("filer"))
    rid = new_report(client)
    upload(client, rid, PDF, "a.pdf")
    upload(client, rid, PDF, "b.pdf")
    a, b = _attachments(app)
    store_dir = tmp_path / "blobs"
    (store_dir / b.blob_key[:2] / b.blob_key).unlink()
    stray = "ab" * 16
    (store_dir / stray[:2]).mkdir(exist_ok=True)
    (store_dir / stray[:2] / stray).write_bytes(b"x")
    old = time.time() - 7200
    os.utime(store_dir / stray[:2] / stray, (old, old))
    with app.app_context():
        result = blobcheck.check(db.session(), store_for(app.config["SETTINGS"], db.session), keyring_for(own_keyring))
    assert [o.key for o in result.orphans] == [stray]
    assert [(r.holder, r.row_id, r.blob_key) for r in result.missing] == [("attachments", b.id, b.blob_key)]
    assert not result.ok


def test_deleting_an_attachment_leaves_no_blob(app, factory, own_keyring, tmp_path):
    from tests.conftest import csrf_of

    client = app.test_client()
    sign_in(client, factory.user("filer"))
    rid = new_report(client)
    upload(client, rid, PDF, "a.pdf")
    [att] = _attachments(app)
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    client.post(f"/attachments/{att.id}/delete", data={"csrf_token": csrf_of(page)})
    assert _attachments(app) == []
    assert not (tmp_path / "blobs" / att.blob_key[:2] / att.blob_key).exists()
