"""Key retirement never drops a KEK that a data key still needs, committed or in flight
(issue 14 item 3; portal.encryption.leases): the race as the issue reproduced it, on
PostgreSQL, and the two interleavings of a wrap and a retirement on both databases."""
from __future__ import annotations

import base64
import json
import threading
import time

import pytest
import sqlalchemy as sa

from crypto import KeyInUse, MemoryKeyring
from tests.conftest import sign_in
from tests.reports_helpers import new_report
from tests.test_attachments import _attachments, upload
from tests.test_keys_and_blobs import _cli, own_keyring  # noqa: F401  (a fixture)

DEK = bytes(range(32))


@pytest.fixture
def keyring_file(request):
    """This test's own copy of the keyring (tests.test_keys_and_blobs.own_keyring)."""
    return request.getfixturevalue("own_keyring")
AUDIT_LOCK = 1414812225  # portal.audit.trail: the advisory lock every audited commit takes


def _stale_copy(keyring_file, kek_id) -> MemoryKeyring:
    """Another process's view of the keyring, from before the rotation."""
    doc = json.loads(keyring_file.read_text())
    return MemoryKeyring({kek_id: base64.b64decode(doc["keys"][kek_id]["key"])}, active=kek_id)


def _test_keys(s):
    from portal.attachments.models import DataKey

    return list(s.execute(sa.select(DataKey).where(DataKey.purpose == "test")).scalars())


def test_lease_then_retire_refuses_until_the_key_is_committed_and_rewrapped(app, keyring_file):
    from portal import db
    from portal.attachments.models import DataKey
    from portal.encryption import leases, rotation
    from portal.encryption.opener import keyring_for

    kr = keyring_for(keyring_file)
    old = kr.active_id
    engine = app.extensions["db_engine"]
    # The wrapping side writes first: a committed lease on the active KEK, then the wrap.
    lease = leases.take(engine, old, "attachment")
    kek_id, wrapped = kr.wrap(DEK)
    assert kek_id == old
    new = kr.rotate()
    with app.app_context():
        s = db.session()
        with pytest.raises(KeyInUse, match="in flight"):
            rotation.retire(s, kr, old)
        assert old in kr.ids()
        # The wrapper's read comes after the retirement's write: it sees the mark.
        assert old in leases.retiring(s)
        s.rollback()
        # The wrapped key is committed; the same transaction ends the lease.
        s.add(DataKey(purpose="test", kek_id=old, wrapped=wrapped))
        leases.release(s, lease)
        s.commit()
        assert leases.live(s) == []
        with pytest.raises(KeyInUse, match="rewrap"):
            rotation.retire(s, kr, old)
        assert old in kr.ids()
        assert rotation.rewrap(s, kr) >= 1
        rotation.retire(s, kr, old)
        assert old not in kr.ids()
        [dk] = _test_keys(s)
        assert dk.kek_id == new and kr.unwrap(dk.kek_id, dk.wrapped) == DEK
        assert leases.marks(s)[old] is not None  # retired, and when
        s.rollback()


def test_retire_then_lease_never_wraps_under_the_retired_key(app, keyring_file):
    from portal import db
    from portal.encryption import leases, rotation
    from portal.encryption.opener import keyring_for

    kr = keyring_for(keyring_file)
    old = kr.active_id
    stale = _stale_copy(keyring_file, old)  # a process that has not re-read the keyring yet
    new = kr.rotate()
    with app.app_context():
        s = db.session()
        rotation.rewrap(s, kr)
        rotation.retire(s, kr, old)  # marked, nothing counted, removed
        assert old not in kr.ids()
        # The wrapper writes its lease after the retirement counted; its own read sees the mark.
        with pytest.raises(leases.KeyRetiring):
            leases.wrap(s, stale, DEK, "attachment")
        s.rollback()
        assert leases.live(s) == []  # the lease it took was given back
        s.rollback()
        # With the keyring as it is now, the wrap uses the new key.
        lease, kek_id, wrapped = leases.wrap(s, kr, DEK, "attachment")
        assert lease.kek_id == kek_id == new and kr.unwrap(new, wrapped) == DEK
        leases.release(s, lease)
        s.commit()
        assert leases.live(s) == []


def test_a_lease_ends_with_its_transaction_or_expires(app, keyring_file, monkeypatch):
    from datetime import timedelta

    from portal import db
    from portal.encryption import leases, registry

    engine = app.extensions["db_engine"]
    with app.app_context():
        kek = db.session().execute(sa.text("SELECT kek_id FROM data_keys")).scalars().first()
        db.session().rollback()
    lease = leases.take(engine, kek, "attachment")
    with app.app_context():
        s = db.session()
        assert registry.kek_usage_by_holder(s)[kek][registry.IN_FLIGHT] == 1
        s.rollback()
    leases.drop(engine, lease)
    monkeypatch.setattr(leases, "lifetime", timedelta(seconds=-1))  # born expired
    expired = leases.take(engine, kek, "attachment")
    with app.app_context():
        s = db.session()
        assert registry.IN_FLIGHT not in registry.kek_usage_by_holder(s)[kek]
        with pytest.raises(leases.LeaseExpired):
            leases.release(s, expired)  # the transaction storing that key must not commit
        s.rollback()


def test_keys_status_shows_wraps_in_flight_and_keys_being_retired(app, keyring_file):
    from portal.encryption import leases
    from portal.encryption.opener import keyring_for

    kr = keyring_for(keyring_file)
    old = kr.active_id
    engine = app.extensions["db_engine"]
    lease = leases.take(engine, old, "attachment")
    kr.rotate()
    leases.mark_retiring(engine, old)
    result = _cli(app, "keys", "status")
    assert result.exception is None, result.output
    assert "wraps in flight: 1" in result.output
    assert f"{old}  attachment" in result.output
    assert "RETIRING" in next(line for line in result.output.splitlines() if old in line)
    refused = _cli(app, "keys", "retire", old)
    assert refused.exit_code == 1 and "in flight" in refused.output
    assert old in kr.ids()
    leases.drop(engine, lease)


@pytest.mark.postgres_only
def test_retire_refuses_while_an_upload_waits_at_commit(app, factory, keyring_file):
    """The issue's reproduction: an upload held at commit by the audit lock; rotate, rewrap,
    retire (refused); release; the upload commits and decrypts; then retirement succeeds."""
    from portal import db
    from portal.encryption import leases, registry, rotation
    from portal.encryption.opener import keyring_for

    data = b"%PDF-1.7\n" + bytes(range(256)) * 4096 + b"\n%%EOF\n"  # 1 MiB
    client = app.test_client()
    sign_in(client, factory.user("filer", org=factory.org(facility=True)))
    rid = new_report(client)
    kr = keyring_for(keyring_file)
    old = kr.active_id
    engine = app.extensions["db_engine"]
    locker = engine.connect()
    locker.exec_driver_sql(f"SELECT pg_advisory_lock({AUDIT_LOCK})")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(upload(client, rid, data, "slow.pdf")))
    try:
        thread.start()
        deadline = time.monotonic() + 60
        with engine.connect() as c:
            while not c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                        "AND NOT granted")).scalar_one():
                assert time.monotonic() < deadline, "the upload never reached its commit"
                c.rollback()
                time.sleep(0.05)
            c.rollback()
            assert [lease.kek_id for lease in leases.live(c)] == [old]
            c.rollback()
        new = kr.rotate()
        with app.app_context():
            s = db.session()
            rotation.rewrap(s, kr)
            with pytest.raises(KeyInUse, match="in flight"):
                rotation.retire(s, kr, old)
            assert old in kr.ids()
    finally:
        locker.exec_driver_sql(f"SELECT pg_advisory_unlock({AUDIT_LOCK})")
        locker.close()
        thread.join(60)
    assert answers and answers[0].status_code == 302
    [att] = _attachments(app)
    assert att.kek_id == old  # wrapped before the rotation, committed after the rewrap
    assert client.get(f"/attachments/{att.id}").data == data
    with app.app_context():
        s = db.session()
        assert registry.kek_usage_by_holder(s)[old] == {"attachments": 1}
        with pytest.raises(KeyInUse, match="rewrap"):
            rotation.retire(s, kr, old)
        rotation.rewrap(s, kr)
        rotation.retire(s, kr, old)
    assert old not in kr.ids() and kr.active_id == new
    [att] = _attachments(app)
    assert att.kek_id == new and client.get(f"/attachments/{att.id}").data == data
