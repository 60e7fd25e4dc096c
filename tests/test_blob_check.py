"""`portal blobs check` against the registry of everything encrypted, `--deep` naming each bad
blob, `portal blobs clean-partial` never touching an upload still writing, and the portal's
own error page for a blob that is missing or damaged (issue 14 item 2)."""
from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import audit_events, ja, sign_in
from tests.reports_helpers import new_report
from tests.test_attachments import _attachments, upload
from tests.test_informs import _inform, case, draft_and_send, post  # noqa: F401  (case: a fixture)
from tests.test_keys_and_blobs import _cli

UNREADABLE = "This file cannot be read at the moment. The administrators have been told."


def _pdf(n: int, size: int = 150_000) -> bytes:
    return b"%PDF-1.7\n" + bytes([n]) * size + b"\n%%EOF\n"


@pytest.fixture
def directory(app, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    return tmp_path / "blobs"


@pytest.fixture
def database(app):
    s = app.config["SETTINGS"]
    s.blob_store = "database"
    yield
    s.blob_store = "directory"


@pytest.fixture
def filer(app, factory):
    client = app.test_client()
    sign_in(client, factory.user("filer", org=factory.org(facility=True)))
    return client


def _uploaded(app, client, n: int):
    rid = new_report(client)
    for i in range(n):
        assert upload(client, rid, _pdf(i), f"f{i}.pdf").status_code == 302
    return _attachments(app)


def _path(root, att):
    return root / att.blob_key[:2] / att.blob_key


def _flip(path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


# ---------------------------------------------------------------- the check


def test_deep_check_names_every_bad_blob_and_its_failure(app, filer, directory):
    from portal import db
    from portal.attachments.models import Attachment

    ok, tampered, truncated, extended, swapped, rekeyed, missing = _uploaded(app, filer, 7)
    _flip(_path(directory, tampered), 100_000)
    raw = _path(directory, truncated).read_bytes()
    _path(directory, truncated).write_bytes(raw[:-100])
    with open(_path(directory, extended), "ab") as f:
        f.write(b"\x00" * 40)
    _path(directory, swapped).write_bytes(_path(directory, ok).read_bytes())  # another record's blob
    _path(directory, missing).unlink()
    with app.app_context():  # a data key that unwraps, but is another record's
        db.session().execute(sa.update(Attachment).where(Attachment.id == rekeyed.id)
                             .values(wrapped_dek=ok.wrapped_dek))
        db.session().commit()
    shallow = _cli(app, "blobs", "check")
    assert shallow.exit_code == 1
    assert f"record without blob: attachments #{missing.id} blob {missing.blob_key}" in shallow.output
    assert "BAD" not in shallow.output  # without --deep only presence is checked
    deep = _cli(app, "blobs", "check", "--deep")
    assert deep.exit_code == 1, deep.output
    bad = {line.split(" blob ")[0]: line for line in deep.output.splitlines() if line.startswith("BAD")}
    expected = {tampered: "tampered", truncated: "truncated", extended: "extended", swapped: "other record",
                rekeyed: "wrong key"}
    assert set(bad) == {f"BAD attachments #{a.id}" for a in expected}
    for att, problem in expected.items():
        assert f"blob {att.blob_key}: {problem} (" in bad[f"BAD attachments #{att.id}"]
    assert "deep: 6 blobs authenticated, 5 bad" in deep.output and " MB/s" in deep.output
    assert "problems found" in deep.output
    # Nothing was written: the store holds exactly what it held.
    assert sorted(p.name for p in directory.rglob("*") if p.is_file()) == sorted(
        a.blob_key for a in (ok, tampered, truncated, extended, swapped, rekeyed))


def test_deep_check_on_the_database_store(app, filer, database):
    from portal import db
    from portal.attachments.models import BlobChunk

    good, bad, gone = _uploaded(app, filer, 3)
    with app.app_context():
        s = db.session()
        data = bytearray(s.execute(sa.select(BlobChunk.data).where(BlobChunk.key == bad.blob_key,
                                                                    BlobChunk.seq == 0)).scalar_one())
        data[90_000] ^= 0x80
        s.execute(sa.update(BlobChunk).where(BlobChunk.key == bad.blob_key, BlobChunk.seq == 0)
                  .values(data=bytes(data)))
        s.execute(sa.delete(BlobChunk).where(BlobChunk.key == gone.blob_key))
        s.commit()
    out = _cli(app, "blobs", "check", "--deep")
    assert out.exit_code == 1
    assert f"record without blob: attachments #{gone.id}" in out.output
    assert f"BAD attachments #{bad.id} blob {bad.blob_key}: tampered" in out.output
    assert f"#{good.id} " not in out.output and "deep: 2 blobs authenticated, 1 bad" in out.output


def test_a_clean_store_is_ok(app, filer, directory):
    _uploaded(app, filer, 2)
    out = _cli(app, "blobs", "check", "--deep")
    assert out.exit_code == 0, out.output
    assert "ok: every record has its blob and every blob its record" in out.output


def test_a_blob_just_stored_whose_row_is_committing_is_not_called_an_orphan(app, filer, directory):
    stray = "cd" * 16
    (directory / stray[:2]).mkdir(parents=True, exist_ok=True)
    (directory / stray[:2] / stray).write_bytes(b"x")
    out = _cli(app, "blobs", "check")
    assert out.exit_code == 0 and "recent blob without a record yet" in out.output
    old = time.time() - 2 * 3600
    os.utime(directory / stray[:2] / stray, (old, old))
    out = _cli(app, "blobs", "check")
    assert out.exit_code == 1 and f"orphan blob (no record names it): {stray}" in out.output


# ---------------------------------------------------------------- partial uploads


def test_clean_partial_removes_only_what_no_upload_is_writing(app, directory):
    from portal.attachments.blobstore import DirectoryBlobStore

    store = DirectoryBlobStore(directory)
    old = time.time() - 30 * 3600
    dead = directory / "tmp" / f"{'a1' * 16}.part"  # a killed worker's: no lock, untouched for 30 h
    dead.write_bytes(b"ciphertext")
    os.utime(dead, (old, old))
    slow = store.writer("b2" * 16)  # a live upload whose client has been silent as long
    slow.write(b"ciphertext")
    os.utime(store.root / "tmp" / f"{'b2' * 16}.part", (old, old))
    fresh = store.writer("c3" * 16)  # a live upload, just written
    fresh.write(b"ciphertext")
    before = _cli(app, "blobs", "check")
    assert before.exit_code == 1 and before.output.count("stale partial upload") == 2
    assert "uploads in progress: 1" in before.output
    refused = _cli(app, "blobs", "clean-partial", "--older-than", "0.5")
    assert refused.exit_code == 2 and dead.exists()  # below the floor: nothing done
    out = _cli(app, "blobs", "clean-partial", "--older-than", "24")
    assert out.exit_code == 0, out.output
    assert not dead.exists()
    assert f"kept (its upload is still writing): {store.root / 'tmp' / ('b2' * 16 + '.part')}" in out.output
    assert "removed 1; kept 1 in use and 1 younger than 24 h" in out.output
    slow.commit()
    fresh.commit()  # both uploads finish normally
    assert store.exists("b2" * 16) and store.exists("c3" * 16)
    [event] = audit_events(app, "blobs.clean_partial")
    assert json.loads(event.details)["removed"] == 1


def test_clean_partial_on_the_database_store_removes_old_unreferenced_chunks(app, filer, database):
    from portal import db
    from portal.attachments.models import BlobChunk
    from portal.db import utcnow

    [att] = _uploaded(app, filer, 1)
    long_ago = utcnow() - timedelta(hours=48)
    with app.app_context():
        s = db.session()
        s.add_all([BlobChunk(key="d4" * 16, seq=0, data=b"old", created_at=long_ago),
                   BlobChunk(key="e5" * 16, seq=0, data=b"new")])
        s.execute(sa.update(BlobChunk).where(BlobChunk.key == att.blob_key).values(created_at=long_ago))
        s.commit()
    out = _cli(app, "blobs", "clean-partial")
    assert out.exit_code == 0, out.output
    with app.app_context():
        left = set(db.session().execute(sa.select(BlobChunk.key).distinct()).scalars())
    assert left == {att.blob_key, "e5" * 16}
    assert filer.get(f"/attachments/{att.id}").data == _pdf(0)


# ---------------------------------------------------------------- the download's error page


def _error_page(resp):
    assert resp.status_code == 500
    page = resp.get_data(as_text=True)
    assert ja(UNREADABLE) in page and "<html" in page.lower()


@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_attachment_with_a_missing_or_damaged_blob_gives_the_error_page(app, filer, directory, damage):
    [att] = _uploaded(app, filer, 1)
    if damage == "missing":
        _path(directory, att).unlink()
    else:
        _flip(_path(directory, att), 200)  # in the first segment: found before the response starts
    _error_page(filer.get(f"/attachments/{att.id}"))
    [event] = [e for e in audit_events(app) if e.action.startswith("attachment.download")]
    assert (event.action, event.outcome, event.reason) == (
        "attachment.download", "failure", "blob_missing" if damage == "missing" else "integrity")


def test_attachment_without_chunks_on_the_database_store_gives_the_error_page(app, filer, database):
    from portal import db
    from portal.attachments.models import BlobChunk

    [att] = _uploaded(app, filer, 1)
    with app.app_context():
        db.session().execute(sa.delete(BlobChunk).where(BlobChunk.key == att.blob_key))
        db.session().commit()
    _error_page(filer.get(f"/attachments/{att.id}"))


@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_notice_with_a_missing_or_damaged_blob_gives_the_error_page(app, case, tmp_path, damage):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    assert post(case["approver"], rid, f"/informs/{i.id}/approve").status_code == 302
    i = _inform(app, rid)
    path = tmp_path / "blobs" / i.notice_blob_key[:2] / i.notice_blob_key
    if damage == "missing":
        path.unlink()
    else:
        _flip(path, 300)
    _error_page(case["filer"].get(f"/informs/{i.id}/notice.pdf"))
    [event] = [e for e in audit_events(app) if e.action.startswith("inform.notice.download")]
    assert (event.action, event.outcome) == ("inform.notice.download", "failure")
    # The English rendering does not read the blob and still downloads.
    assert case["filer"].get(f"/informs/{i.id}/notice.pdf?lang=en").status_code == 200
