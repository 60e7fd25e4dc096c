"""Malware scanning of every upload with a real clamd (issue 17): the process's private clamd
(tests/private_clamd.py) loaded with the project's offline signatures (clamav/), on both
databases. What arrives infected is stored refused and never served; what arrives while the
scanner is away stays pending, seen by its uploader alone, until `portal scan --pending`;
`portal scan` catches with a new signature what was clean before."""
from __future__ import annotations

import io
import os
import signal
import zipfile
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from portal.access.policy import Action, Labels, Subject, decide
from tests.conftest import audit_events, csrf_of, ja, sign_in
from tests.private_clamd import EICAR, PROJECT_MARKER, PrivateClamd, shared
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_dialogue import send

TODAY = date.today()


@pytest.fixture
def filer(app, factory):
    org = factory.org(facility=True)
    user = factory.user("filer", org=org, compartments=("T01",))
    client = app.test_client()
    sign_in(client, user)
    return client, user, org


def upload(client, rid, data: bytes, name: str):
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    return client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                       data={"csrf_token": csrf_of(page), "classification": "restricted",
                             "file": (io.BytesIO(data), name)})


def attachments(app):
    from portal import db
    from portal.attachments.models import Attachment

    with app.app_context():
        rows = list(db.session().execute(sa.select(Attachment).order_by(Attachment.id)).scalars())
        db.session().expunge_all()
        return rows


def scan_events(app):
    import json

    return [(e.outcome, json.loads(e.details)) for e in audit_events(app, "attachment.scan")]


def pdf_with(payload: bytes) -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Length 90 >> stream\n" + payload + b"\nendstream endobj\n%%EOF\n"


def zipped(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, content)
    return buf.getvalue()


def encrypted_zip() -> bytes:
    """A ZIP whose entry says it is encrypted (general-purpose flag bit 0): what a company
    sends when it "protects" a drawing with a password."""
    data = bytearray(zipped("drawing.dwg", b"drawing " * 500))
    data[data.find(b"PK\x03\x04") + 6] |= 1
    data[data.find(b"PK\x01\x02") + 8] |= 1
    return bytes(data)


def nested_zip(depth: int = 25) -> bytes:
    """A recursion bomb: archives inside archives deeper than clamd looks."""
    inner, name = b"the core", "core.txt"
    for n in range(depth):
        inner, name = zipped(name, inner), f"layer{n}.zip"
    return inner


def run_cli(app, *args: str):
    """`portal` as an operator runs it, against the test's database, instance and scanner."""
    from portal.cli import main

    s = app.config["SETTINGS"]
    env = {"PORTAL_ENV": "test", "PORTAL_DATABASE_URL": str(s.database_url), "PORTAL_INSTANCE_PATH": str(s.instance_path),
           "PORTAL_SECRET_KEY": s.secret_key, "PORTAL_CLAMD_SOCKET": s.clamd_socket or "",
           "PORTAL_BLOB_STORE": s.blob_store, "PORTAL_BLOB_DIR": str(s.blob_dir)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# ---------------------------------------------------------------- verdicts at upload

@pytest.mark.parametrize("content, name, found", [
    (pdf_with(EICAR), "図面.pdf", "Portal.Test.Eicar-Anywhere"),
    (zipped("spec/readme.txt", b"harmless text\n" + PROJECT_MARKER + b"\nmore text\n"), "specs.zip",
     "Portal.Test.Project-Signature"),
])
def test_infected_upload_is_kept_refused_and_never_served(app, filer, factory, content, name, found):
    client, user, org = filer
    rid = new_report(client)
    resp = upload(client, rid, content, name)
    assert resp.status_code == 302
    [att] = attachments(app)
    assert att.scan_state == "infected" and att.scan_signature.startswith(found)
    # The uploader is told why, on the next page and in the list; the file cannot be opened.
    page = client.get(resp.location).get_data(as_text=True)
    assert att.scan_signature in page and 'data-state="infected"' in page
    assert f'href="/attachments/{att.id}"' not in page
    assert client.get(f"/attachments/{att.id}").status_code == 403
    # Recorded: the upload, then the verdict with what was found.
    assert scan_events(app) == [("failure", {"how": "upload", "state": "infected", "signature": att.scan_signature,
                                             "previous": "pending", "sha256": att.sha256})]
    denied = audit_events(app, "access.denied")
    assert denied and denied[-1].reason == "scan_infected"


def test_clean_upload_is_served(app, filer):
    client, _, _ = filer
    rid = new_report(client)
    content = pdf_with(b"an ordinary drawing")
    upload(client, rid, content, "clean.pdf")
    [att] = attachments(app)
    assert att.scan_state == "clean" and att.scan_signature is None and att.scanned_at is not None
    assert client.get(f"/attachments/{att.id}").data == content
    assert [o for o, _ in scan_events(app)] == ["success"]


@pytest.mark.parametrize("content, name, found", [
    (encrypted_zip(), "protected.zip", "Heuristics.Encrypted.Zip"),
    (nested_zip(), "bomb.zip", "Heuristics.Limits.Exceeded.MaxRecursion"),
])
def test_a_file_clamd_cannot_look_into_is_refused_with_a_reason(app, filer, content, name, found):
    client, _, _ = filer
    rid = new_report(client)
    upload(client, rid, content, name)
    [att] = attachments(app)
    assert att.scan_state == "infected" and att.scan_signature == found
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert ja("The malware check could not look inside this file (%(why)s). Upload it unencrypted and within the "
              "size limit.", why=found) in page
    [(outcome, details)] = scan_events(app)
    assert outcome == "failure" and details["signature"] == found
    assert audit_events(app, "attachment.scan")[0].reason == "unscannable"


def test_message_file_is_scanned_and_meti_sees_it_was_refused(app, filer, factory):
    client, user, _ = filer
    rid = new_report(client)
    fill_all(client, rid)
    submit(client, rid)
    resp = send(client, rid, "external", "契約書を添付します。", file=(io.BytesIO(pdf_with(EICAR)), "contract.pdf"))
    assert resp.status_code == 302
    [att] = attachments(app)
    assert att.message_id is not None and att.scan_state == "infected"
    reviewer = app.test_client()
    sign_in(reviewer, factory.user("reviewer", compartments=("T01",)))
    page = reviewer.get(f"/reports/{rid}").get_data(as_text=True)
    assert "contract.pdf" in page and 'data-state="infected"' in page
    assert f'href="/attachments/{att.id}"' not in page
    assert reviewer.get(f"/attachments/{att.id}").status_code == 403


def test_a_200_mib_clean_file_streams_through_the_scanner(app, filer):
    """Sent as a stream (never held in memory by the test or the portal) and scanned whole:
    clamd's limits match the portal's 1 GiB, so it is not cut at clamd's 25 MB default."""
    client, _, _ = filer
    rid = new_report(client)
    token = csrf_of(client.get(f"/reports/{rid}/attachments").get_data(as_text=True))
    size = 200 * 1024 * 1024
    body = MultipartStream({"csrf_token": token, "classification": "restricted"}, "large.pdf",
                           b"%PDF-1.7\n", size)
    resp = post_stream(client, f"/reports/{rid}/attachments", body)
    assert resp.status_code == 302, resp.get_data(as_text=True)[-2000:]
    [att] = attachments(app)
    assert att.size == size and att.scan_state == "clean"
    assert scan_events(app)[0][1]["state"] == "clean"


def post_stream(client, path: str, body: "MultipartStream"):
    """POST a body read as the app reads it (Werkzeug's test client would buffer it whole)."""
    from werkzeug.test import EnvironBuilder

    request = EnvironBuilder(path=path, method="POST").get_request()
    request.environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(body.length), "CONTENT_TYPE": body.content_type})
    return client.open(request)


class MultipartStream:
    """A multipart body generated as it is read: the file is a header and then a repeating
    pseudo-random block (no signature matches it)."""

    def __init__(self, fields: dict, filename: str, head: bytes, size: int):
        from tests.live_server import multipart_parts

        boundary = "----scan" + os.urandom(6).hex()
        before, after = multipart_parts(fields, "file", filename, boundary)
        block = os.urandom(1024 * 1024)
        self.parts = iter([before, head, *self._blocks(block, size - len(head)), after])
        self.length = len(before) + size + len(after)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.buf = b""

    @staticmethod
    def _blocks(block: bytes, n: int):
        while n > 0:
            yield block[:n]
            n -= len(block)

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buf) < size:
            nxt = next(self.parts, None)
            if nxt is None:
                break
            self.buf += nxt
        out, self.buf = (self.buf, b"") if size < 0 else (self.buf[:size], self.buf[size:])
        return out

    def readline(self, size: int = -1) -> bytes:  # werkzeug reads the body by read() only
        return self.read(size)


# ---------------------------------------------------------------- the scanner away

class StopsScannerAt(MultipartStream):
    """A body that kills its scanner once ``at`` bytes have been read: clamd is gone mid-scan."""

    def __init__(self, scanner: PrivateClamd, at: int, *args):
        super().__init__(*args)
        self.scanner, self.at, self.seen = scanner, at, 0

    def read(self, size: int = -1) -> bytes:
        out = super().read(size)
        self.seen += len(out)
        if self.seen >= self.at and self.scanner.proc.poll() is None:
            os.kill(self.scanner.proc.pid, signal.SIGKILL)
            self.scanner.proc.wait()
        return out


@pytest.fixture
def own_scanner(app):
    scanner = PrivateClamd().start()
    s = app.config["SETTINGS"]
    before = s.clamd_socket
    s.clamd_socket = scanner.socket
    yield scanner
    s.clamd_socket = before
    scanner.remove()


def test_scanner_stopped_mid_scan_leaves_the_file_pending_until_scan_pending(app, filer, factory, own_scanner):
    client, user, org = filer
    rid = new_report(client)
    token = csrf_of(client.get(f"/reports/{rid}/attachments").get_data(as_text=True))
    body = StopsScannerAt(own_scanner, 3 * 1024 * 1024, {"csrf_token": token, "classification": "restricted"},
                          "drawing.pdf", b"%PDF-1.7\n", 8 * 1024 * 1024)
    resp = post_stream(client, f"/reports/{rid}/attachments", body)
    assert resp.status_code == 302
    assert own_scanner.proc.poll() is not None  # it did die mid-upload
    [att] = attachments(app)
    assert att.scan_state == "pending" and att.scanned_at is None
    [(outcome, details)] = scan_events(app)
    assert outcome == "failure" and details["state"] == "pending"
    # The uploader sees it waiting; nobody opens it; a colleague does not even see it.
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert "drawing.pdf" in page and 'data-state="pending"' in page
    assert client.get(f"/attachments/{att.id}").status_code == 403
    colleague = app.test_client()
    sign_in(colleague, factory.user("filer", org=org, compartments=("T01",)))
    assert "drawing.pdf" not in colleague.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert colleague.get(f"/attachments/{att.id}").status_code == 404

    # While the scanner is down the command says so and changes nothing.
    down = run_cli(app, "scan", "--pending")
    assert down.exit_code != 0 and "does not answer" in down.output
    assert attachments(app)[0].scan_state == "pending"

    # With a scanner again, the stored blob is decrypted and streamed to it.
    app.config["SETTINGS"].clamd_socket = shared().socket
    result = run_cli(app, "scan", "--pending")
    assert result.exit_code == 0, result.output
    assert "[1/1] attachment" in result.output and "1 clean" in result.output
    [att] = attachments(app)
    assert att.scan_state == "clean"
    assert scan_events(app)[-1] == ("success", {"how": "pending", "state": "clean", "signature": "",
                                                "previous": "pending", "sha256": att.sha256})
    got = colleague.get(f"/attachments/{att.id}")
    assert got.status_code == 200 and len(got.data) == 8 * 1024 * 1024


def test_without_a_scanner_uploads_wait_pending(app, filer):
    s = app.config["SETTINGS"]
    before, s.clamd_socket = s.clamd_socket, None
    try:
        client, _, _ = filer
        rid = new_report(client)
        upload(client, rid, pdf_with(b"drawing"), "a.pdf")
    finally:
        s.clamd_socket = before
    [att] = attachments(app)
    assert att.scan_state == "pending"
    assert client.get(f"/attachments/{att.id}").status_code == 403


# ---------------------------------------------------------------- rescans

def test_signature_added_later_is_caught_by_portal_scan(app, filer, factory):
    client, user, _ = filer
    rid = new_report(client)
    needle = b"LATER-SIGNATURE-" + os.urandom(8).hex().encode()
    upload(client, rid, pdf_with(b"looked fine then " + needle), "old.pdf")
    upload(client, rid, pdf_with(b"still fine"), "other.pdf")
    caught, other = attachments(app)
    assert caught.scan_state == other.scan_state == "clean"
    assert client.get(f"/attachments/{caught.id}").status_code == 200

    # Files scanned within --older-than are skipped (a stopped run resumes): nothing to do.
    assert "0 of 0 files" in run_cli(app, "scan").output

    shared().add_signature("Portal.Test.Added-Later", needle)
    result = run_cli(app, "scan", "--older-than", "0", "--rate", "100")
    assert result.exit_code == 1
    assert "[2/2] attachment" in result.output and f"QUARANTINED: attachment {caught.id}" in result.output
    caught, other = attachments(app)
    assert caught.scan_state == "infected" and caught.scan_signature.startswith("Portal.Test.Added-Later")
    assert other.scan_state == "clean"
    assert client.get(f"/attachments/{caught.id}").status_code == 403
    assert client.get(f"/attachments/{other.id}").status_code == 200
    [q] = audit_events(app, "attachment.quarantine")
    assert q.target_id == str(caught.id)


def test_rescan_resumes_where_a_stopped_run_was(app, filer):
    from portal import db
    from portal.attachments.models import Attachment
    from portal.db import utcnow

    client, _, _ = filer
    rid = new_report(client)
    for n in range(3):
        upload(client, rid, pdf_with(b"file %d" % n), f"f{n}.pdf")
    with app.app_context():
        db.session().execute(sa.update(Attachment).values(scanned_at=utcnow() - timedelta(days=2)))
        db.session().commit()
    first = run_cli(app, "scan", "--limit", "1")
    assert "scanned 1 of 1 files" in first.output
    rest = run_cli(app, "scan")
    assert "scanned 2 of 2 files" in rest.output and rest.exit_code == 0
    assert "scanned 0 of 0 files" in run_cli(app, "scan").output or "nothing to scan" in run_cli(app, "scan").output


# ---------------------------------------------------------------- the policy, health and dashboard

def _subject(user_id: int, role: str = "filer") -> Subject:
    return Subject(user_id=user_id, role=role, org_id=1, active=True, clearance_level="confidential",
                   clearance_expires_on=TODAY + timedelta(days=30), compartments=frozenset({"T01"}),
                   org_facility_valid=True)


@pytest.mark.parametrize("state, who, see, download", [
    ("clean", "uploader", True, True), ("clean", "colleague", True, True), ("clean", "reviewer", True, True),
    ("pending", "uploader", True, False), ("pending", "colleague", False, False), ("pending", "reviewer", False, False),
    ("error", "uploader", True, False), ("error", "colleague", False, False),
    ("infected", "uploader", True, False), ("infected", "colleague", True, False), ("infected", "reviewer", True, False),
    ("bogus", "uploader", False, False),
])
def test_policy_scan_condition(state, who, see, download):
    labels = Labels(org_id=1, classification="restricted", compartments=frozenset({"T01"}), scan_state=state,
                    uploader_id=10)
    subject = {"uploader": _subject(10), "colleague": _subject(11), "reviewer": _subject(12, "reviewer")}[who]
    assert decide(subject, Action.ATTACHMENT_SEE, labels, today=TODAY).allowed is see
    d = decide(subject, Action.ATTACHMENT_DOWNLOAD, labels, today=TODAY)
    assert d.allowed is download
    if state == "pending" and who != "uploader":
        assert d.conceal  # nobody but the uploader learns that it exists


def test_healthz_reports_scanner_down(app, client, own_scanner):
    assert client.get("/healthz").get_json()["scanner"]["state"] == "ok"
    own_scanner.stop()
    resp = client.get("/healthz")
    assert resp.status_code == 200  # the portal still serves; uploads wait
    assert resp.get_json()["scanner"] == {"state": "down"} and resp.get_json()["status"] == "degraded"


def test_dashboard_counts_pending_and_infected(app, filer, factory):
    client, _, _ = filer
    rid = new_report(client)
    fill_all(client, rid)
    upload(client, rid, pdf_with(EICAR), "bad.pdf")
    upload(client, rid, pdf_with(b"good"), "good.pdf")
    s = app.config["SETTINGS"]
    before, s.clamd_socket = s.clamd_socket, None
    try:
        upload(client, rid, pdf_with(b"later"), "later.pdf")
    finally:
        s.clamd_socket = before
    submit(client, rid)
    approver = app.test_client()
    sign_in(approver, factory.user("approver", compartments=("T01",)))
    page = approver.get("/review/dashboard").get_data(as_text=True)
    assert '<dd data-test="scan-pending">1</dd>' in page and '<dd data-test="scan-infected">1</dd>' in page


def test_metrics_show_the_scanner_and_the_files_by_state(app, filer):
    client, _, _ = filer
    rid = new_report(client)
    upload(client, rid, pdf_with(EICAR), "bad.pdf")
    upload(client, rid, pdf_with(b"good"), "good.pdf")
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'portal_attachments_by_scan_state{state="infected"} 1.0' in text
    assert 'portal_attachments_by_scan_state{state="clean"} 1.0' in text
    assert "portal_scanner_up 1.0" in text and "portal_scanner_signatures_age_seconds" in text


def test_admin_console_shows_scanner_and_counts(app, filer, factory):
    client, _, _ = filer
    rid = new_report(client)
    upload(client, rid, pdf_with(EICAR), "bad.pdf")
    upload(client, rid, pdf_with(b"good"), "good.pdf")
    admin = app.test_client()
    sign_in(admin, factory.user("admin", level="restricted", compartments=()))
    page = admin.get("/admin/users").get_data(as_text=True)
    assert '<dd data-test="scan-pending">0</dd>' in page and '<dd data-test="scan-infected">1</dd>' in page
    assert ja("Running") in page
