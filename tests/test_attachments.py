"""Encrypted attachments through the pages, with both blob backends."""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from crypto import DecryptionError
from tests.conftest import IS_PG, audit_events, csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, submit

MARKER = b"TOP-SECRET-MARKER-7f3a9c-" * 3
PDF = b"%PDF-1.7\n" + MARKER + b"\n" + os.urandom(200_000) + b"\n%%EOF\n"


@pytest.fixture(params=["directory", "database"])
def backend(request, app, tmp_path):
    s = app.config["SETTINGS"]
    old = (s.blob_store, s.blob_dir)
    s.blob_store, s.blob_dir = request.param, tmp_path / "blobs"
    yield request.param
    s.blob_store, s.blob_dir = old


@pytest.fixture
def filer_client(app, factory):
    org = factory.org(facility=True)
    user = factory.user("filer", org=org, compartments=("T01",))
    client = app.test_client()
    sign_in(client, user)
    return client, user


def upload(client, rid, data: bytes, name: str, classification="restricted"):
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    return client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                       data={"csrf_token": csrf_of(page), "classification": classification,
                             "file": (io.BytesIO(data), name)})


def _attachments(app):
    from portal import db
    from portal.attachments.models import Attachment

    with app.app_context():
        rows = list(db.session().execute(sa.select(Attachment).order_by(Attachment.id)).scalars())
        db.session().expunge_all()
        return rows


def _blob_count(app, tmp_path, backend):
    from portal import db
    from portal.attachments.models import BlobChunk

    if backend == "directory":
        root = tmp_path / "blobs"
        return len([p for p in root.rglob("*") if p.is_file()]) if root.exists() else 0
    with app.app_context():
        return db.session().execute(sa.select(sa.func.count(sa.distinct(BlobChunk.key)))).scalar_one()


def test_upload_download_round_trip(app, filer_client, backend):
    import hashlib

    client, _ = filer_client
    rid = new_report(client)
    resp = upload(client, rid, PDF, "契約書 v2.pdf")
    assert resp.status_code == 302, resp.get_data(as_text=True)[-2000:]
    [att] = _attachments(app)
    assert att.filename == "契約書 v2.pdf" and att.size == len(PDF) and att.kind == "pdf"
    assert att.sha256 == hashlib.sha256(PDF).hexdigest()
    assert att.blob_key not in att.filename
    got = client.get(f"/attachments/{att.id}")
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''" in got.headers["Content-Disposition"]
    assert got.headers["Cache-Control"] == "no-store"
    actions = [e.action for e in audit_events(app) if e.action.startswith("attachment.")]
    # The download is recorded when it starts and, with its outcome, when the last byte went out.
    assert actions == ["attachment.upload", "attachment.scan", "attachment.download.start", "attachment.download"]


def test_nothing_in_the_clear(app, filer_client, backend, tmp_path, database_url):
    client, _ = filer_client
    rid = new_report(client)
    # The counterparty's name is sealed too (the lists' title); new each run, so the WAL of an
    # earlier run cannot be what the search finds.
    counterparty = f"MARKER-COUNTERPARTY-{os.urandom(6).hex()}"
    fill_all(client, rid, {"technology": {"description": MARKER.decode()},
                           "counterparty": {"counterparty_name": counterparty}})
    assert upload(client, rid, PDF, "drawing.pdf").status_code == 302
    submit(client, rid)
    places = [tmp_path / "blobs"]
    if IS_PG:
        from portal import db

        with app.app_context():
            with db.engine().connect() as c:
                c.execute(sa.text("CHECKPOINT"))
                data_dir = c.execute(sa.text("SHOW data_directory")).scalar_one()
        places.append(Path(data_dir))
    else:
        places.append(Path(database_url[len("sqlite:///"):]).parent)
    for needle in (MARKER[:24].decode(), counterparty):
        for place in places:
            if not place.exists():
                continue
            found = subprocess.run(["grep", "-rlaF", needle, str(place)], capture_output=True, text=True).stdout
            assert found == "", f"plaintext found in {found}"
    # and the pages still show them to the filer
    page = client.get(f"/reports/{rid}").get_data(as_text=True)
    assert MARKER.decode()[:24] in page and counterparty in page
    assert counterparty in client.get("/reports").get_data(as_text=True)


@pytest.mark.parametrize("data, name, reason", [
    (b"", "empty.pdf", "empty_file"),
    (b"MZ\x90\x00" + b"\x00" * 500, "invoice.pdf", "type_not_allowed"),
    (PDF, "script.exe", "type_not_allowed"),
    (b"\x7fELF" + b"\x00" * 100, "tool.txt", "type_not_allowed"),
])
def test_refused_files_leave_nothing(app, filer_client, backend, tmp_path, data, name, reason):
    client, _ = filer_client
    rid = new_report(client)
    resp = upload(client, rid, data, name)
    assert resp.status_code == 400
    assert _attachments(app) == []
    assert _blob_count(app, tmp_path, backend) == 0
    assert [e.reason for e in audit_events(app, "attachment.upload")] == [reason]


def test_path_in_the_filename_is_only_a_name(app, filer_client, backend):
    client, _ = filer_client
    rid = new_report(client)
    assert upload(client, rid, b"plain text\n", "../../etc/passwd.txt").status_code == 302
    assert upload(client, rid, b"plain text\n", "C:\\Users\\x\\notes.txt").status_code == 302
    names = [a.filename for a in _attachments(app)]
    assert names[0] == "passwd.txt"
    assert names[1].endswith("notes.txt") and not any(c in names[1] for c in "/\\:")


def test_over_the_limit_is_refused_while_streaming(app, filer_client, backend, tmp_path):
    client, _ = filer_client
    s = app.config["SETTINGS"]
    old = s.max_upload_bytes
    s.max_upload_bytes = 100_000
    try:
        rid = new_report(client)
        resp = upload(client, rid, b"%PDF-1.4\n" + b"x" * 300_000, "big.pdf")
    finally:
        s.max_upload_bytes = old
    assert resp.status_code == 413
    assert _attachments(app) == [] and _blob_count(app, tmp_path, backend) == 0


def test_broken_multipart_body_and_missing_token(app, filer_client, backend, tmp_path):
    client, _ = filer_client
    rid = new_report(client)
    body = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.4 half"
    resp = client.post(f"/reports/{rid}/attachments", data=body,
                       content_type="multipart/form-data; boundary=XYZ")
    assert resp.status_code == 400
    resp = client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                       data={"classification": "restricted", "file": (io.BytesIO(PDF), "a.pdf")})
    assert resp.status_code == 400
    assert _attachments(app) == [] and _blob_count(app, tmp_path, backend) == 0


def flip_blob_byte(tmp_path, att, offset: int = 200_000) -> None:
    """Flip one bit of a stored ciphertext in the directory blob store."""
    path = tmp_path / "blobs" / att.blob_key[:2] / att.blob_key
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1
    path.write_bytes(bytes(raw))


def test_tampered_blob_aborts_the_download(app, filer_client, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    client, _ = filer_client
    rid = new_report(client)
    data = b"%PDF-1.4\n" + os.urandom(300_000)
    upload(client, rid, data, "a.pdf")
    [att] = _attachments(app)
    flip_blob_byte(tmp_path, att)
    resp = client.get(f"/attachments/{att.id}")
    with pytest.raises(DecryptionError):
        resp.get_data()


def test_other_organisation_and_other_compartment_cannot_download(app, filer_client, factory):
    client, _ = filer_client
    rid = new_report(client)
    fill_all(client, rid)
    upload(client, rid, PDF, "a.pdf")
    submit(client, rid)
    [att] = _attachments(app)
    stranger = app.test_client()
    sign_in(stranger, factory.user("filer", compartments=("T01",)))
    assert stranger.get(f"/attachments/{att.id}").status_code == 404
    rv = app.test_client()
    sign_in(rv, factory.user("reviewer", compartments=("T08",)))
    assert rv.get(f"/attachments/{att.id}").status_code == 403
    ok = app.test_client()
    sign_in(ok, factory.user("reviewer", compartments=("T01",)))
    assert ok.get(f"/attachments/{att.id}").data == PDF
