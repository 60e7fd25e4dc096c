"""The official notice is durable on both blob stores (issue 14 item 2): approving an inform
stores the whole sealed notice before the row naming it can commit, a failure after sealing
leaves no blob behind, and `portal blobs check` counts issued notices as records, not orphans."""
from __future__ import annotations

import hashlib
import os

import pytest
import sqlalchemy as sa

from tests.test_informs import _inform, case, draft_and_send, post  # noqa: F401  (case: a fixture)
from tests.test_keys_and_blobs import _cli

pytest.importorskip("portal.informs.notice")


@pytest.fixture(params=["directory", "database"])
def store(request, app, case, tmp_path):  # noqa: F811 - the fixture imported above
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = request.param, tmp_path / "blobs"
    yield request.param
    s.blob_store = "directory"


def _chunks(app):
    from portal import db
    from portal.attachments.models import BlobChunk

    with app.app_context():
        return db.session().execute(sa.select(BlobChunk.key, sa.func.count()).group_by(BlobChunk.key)).all()


def _files(tmp_path):
    root = tmp_path / "blobs"
    return sorted(p.name for p in root.glob("??/*")) if root.exists() else []


def test_approve_then_download_the_notice(app, case, store, tmp_path):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    assert post(case["approver"], rid, f"/informs/{i.id}/approve", {"comment": "承認"}).status_code == 302
    i = _inform(app, rid)
    assert i.status == "issued" and i.notice_blob_key and i.notice_en_blob_key
    both = sorted([i.notice_blob_key, i.notice_en_blob_key])  # the Japanese and the English notice
    if store == "database":
        assert sorted(k for k, _n in _chunks(app)) == both
    else:
        assert _files(tmp_path) == both
    for who in ("filer", "approver"):
        got = case[who].get(f"/informs/{i.id}/notice.pdf")
        assert got.status_code == 200
        body = got.get_data()
        assert len(body) == i.notice_size and hashlib.sha256(body).hexdigest() == i.notice_sha256
        assert body.startswith(b"%PDF-")
    checked = _cli(app, "blobs", "check", "--deep")
    assert checked.exit_code == 0, checked.output
    assert "orphan" not in checked.output and "2 blobs authenticated, 0 bad" in checked.output


@pytest.mark.parametrize("size", [300_000, 2_500_000])
def test_a_sealed_document_is_whole_on_the_database_store_when_its_row_commits(app, size):
    """Under one chunk (1 MiB) and over two: nothing is left to write after the row's commit."""
    from portal import db
    from portal.attachments import services
    from portal.encryption.opener import current_keyring

    app.config["SETTINGS"].blob_store = "database"
    data = b"%PDF-1.7\n" + os.urandom(size)
    with app.app_context():
        s = db.session()
        store = services.store_for(app.config["SETTINGS"], db.session)
        sink, kek_id, wrapped = services.seal_bytes(s, store, current_keyring(), data, purpose="notice")
        services.release(s, sink)
        s.commit()
        key, uid = sink.blob_key, sink.uid
    with app.app_context():
        got = b"".join(services.open_bytes(services.store_for(app.config["SETTINGS"], db.session), current_keyring(),
                                           uid=uid, blob_key=key, kek_id=kek_id, wrapped=wrapped))
    assert got == data


def test_a_failure_after_sealing_leaves_no_notice_behind(app, case, store, tmp_path):  # noqa: F811
    from portal import db
    from portal.access.subject import subject_for
    from portal.attachments import services as attachments
    from portal.auth.models import User
    from portal.core.timeutil import today_jst
    from portal.encryption import leases
    from portal.encryption.opener import current_keyring
    from portal.informs import services
    from portal.informs.models import Inform

    i = draft_and_send(case)
    with app.app_context():
        s = db.session()
        user = s.get(User, case["u_approver"].id)
        inform = s.get(Inform, i.id)
        done = services.approve(s, inform, comment=None, confirmed=services.confirmation(inform),
                                subject=subject_for(s, user, today_jst()), actor=user,
                                today=today_jst(), ip=None, keyring=current_keyring(), base_url="http://x",
                                store=attachments.store_for(app.config["SETTINGS"], db.session))
        # What the view does when anything fails before the request commits.
        done._pending_sink.abort()
        s.rollback()
        assert leases.live(s) == []
        s.rollback()
    assert _inform(app, case["rid"]).status == "pending_approval"
    assert _chunks(app) == [] and _files(tmp_path) == []
