"""Issue 16: every issued notice carries the ministry's PAdES signature, made at approval; anyone
can verify it (pyHanko through crypto.notice_verify, poppler's pdfsig); a changed byte, a
revoked or an expired certificate is reported as such; revocation of the inform shows without
changing the stored bytes; damaged stored bytes are never served; no key, no issuance."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pypdf
import pytest

from crypto import notice_pki, pades
from crypto.notice_verify import main as verify_main
from tests.conftest import audit_events
from tests.test_informs import _inform, case, draft_and_send, post  # noqa: F401  (case: a fixture)
from tests.test_keys_and_blobs import _cli

PDFSIG = shutil.which("pdfsig")


def _issue(app, case):  # noqa: F811
    i = draft_and_send(case)
    resp = post(case["approver"], case["rid"], f"/informs/{i.id}/approve", {"comment": "承認"})
    assert resp.status_code == 302
    i = _inform(app, case["rid"])
    assert i.status == "issued"
    return i


def _download(client, i) -> bytes:
    resp = client.get(f"/informs/{i.id}/notice.pdf")
    assert resp.status_code == 200, resp.status_code
    return resp.get_data()


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


def _ca_file(app, tmp_path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(app.test_client().get("/notices/ca.pem").get_data())
    return path


@pytest.fixture(scope="module")
def nss_db(tmp_path_factory, instance_dir):
    """An NSS database trusting the demo CA, as a company would set up pdfsig."""
    if shutil.which("certutil") is None:
        pytest.skip("certutil (libnss3-tools) is not installed")
    d = tmp_path_factory.mktemp("nss")
    subprocess.run(["certutil", "-N", "-d", f"sql:{d}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{d}", "-n", "notice-ca", "-t", "C,C,C", "-i",
                    str(instance_dir / notice_pki.DEMO_CA_CERT)], check=True, capture_output=True)
    return d


def _pdfsig(path: Path, nss: Path | None) -> str:
    args = [PDFSIG] + (["-nssdir", f"sql:{nss}"] if nss else []) + [str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout


def test_the_issued_notice_is_signed_at_approval_and_served_byte_identical(app, case):  # noqa: F811
    i = _issue(app, case)
    a, b = _download(case["filer"], i), _download(case["approver"], i)
    assert a == b and hashlib.sha256(a).hexdigest() == i.notice_sha256 and len(a) == i.notice_size
    v = pades.check(a, trust_roots=[notice_pki.load_ca(app.config["SETTINGS"].instance_path).cert])
    assert v.status == "valid" and "DEMO Inform Notice Signing" in v.signer
    # The signing time is the approval time (to the second: PDF dates carry no fraction).
    issued = i.issued_at.replace(tzinfo=timezone.utc) if i.issued_at.tzinfo is None else i.issued_at
    assert abs((v.signing_time - issued).total_seconds()) < 1
    # A visible signature field on the last page, over the area the notice leaves for it.
    reader = pypdf.PdfReader(io.BytesIO(a))
    fields = [a.get_object() for a in reader.pages[-1].get("/Annots", [])]
    [sig] = [f for f in fields if f.get("/FT") == "/Sig"]
    x1, y1, x2, y2 = (float(n) for n in sig["/Rect"])
    assert x2 - x1 > 100 and y2 - y1 > 30
    assert "/N" in sig["/AP"]
    text = "".join("".join(p.extract_text().split()) for p in reader.pages)
    assert "安全保障貿易管理課" in text and "（教示）" in text and "審査請求" in text and "取消しの訴え" in text
    # The signature area names the issuing office and the signing date (和暦, JST).
    assert "電子署名（PAdES）" in text and "署名日時" in text and "令和" in text


def test_pyhanko_and_pdfsig_accept_the_notice_and_reject_one_changed_byte(app, case, tmp_path, nss_db):  # noqa: F811
    i = _issue(app, case)
    good = tmp_path / "good.pdf"
    good.write_bytes(_download(case["filer"], i))
    ca = _ca_file(app, tmp_path)
    assert verify_main([str(good), "--ca", str(ca)]) == 0
    # In the signed bytes, inside the page content: one bit.
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(_flip(good.read_bytes(), len(good.read_bytes()) // 3))
    assert verify_main([str(bad), "--ca", str(ca)]) == pades.EXIT_DAMAGED
    if PDFSIG is None:
        pytest.skip("pdfsig (poppler-utils) is not installed")
    out = _pdfsig(good, nss_db)
    assert "Signature Validation: Signature is Valid." in out and "Certificate is Trusted." in out, out
    assert "Signer Certificate Common Name: DEMO Inform Notice Signing" in out and "Total document signed" in out
    out = _pdfsig(bad, nss_db)
    assert "Signature is Valid." not in out, out


def _signed_with(signer: notice_pki.Issued, ca: notice_pki.Issued, when: datetime) -> bytes:
    from portal.informs.notice import compose
    from tests.test_inform_notice import SAMPLE

    r = compose(SAMPLE)
    return pades.sign(r.pdf, key=signer.key, cert=signer.cert, chain=[ca.cert], signing_time=when, page=r.page,
                      box=r.box, name="DEMO office", location="Tokyo", reason="test")


@pytest.fixture(scope="module")
def other_ca():
    return notice_pki.new_ca()


def test_a_notice_under_a_revoked_certificate_is_reported_revoked(other_ca, tmp_path):
    signer = notice_pki.new_signer(other_ca)
    now = datetime.now(timezone.utc)
    pdf = _signed_with(signer, other_ca, now - timedelta(hours=1))
    (tmp_path / "n.pdf").write_bytes(pdf)
    (tmp_path / "ca.pem").write_bytes(other_ca.cert.public_bytes(__import__("cryptography").hazmat.primitives
                                                                 .serialization.Encoding.PEM))
    (tmp_path / "empty.crl").write_bytes(notice_pki.crl(other_ca))
    (tmp_path / "revoked.crl").write_bytes(notice_pki.crl(other_ca, [(signer.cert, now - timedelta(minutes=30))]))
    args = [str(tmp_path / "n.pdf"), "--ca", str(tmp_path / "ca.pem"), "--crl"]
    assert verify_main(args + [str(tmp_path / "empty.crl")]) == 0
    v = pades.check(pdf, trust_roots=[other_ca.cert], crls=[(tmp_path / "revoked.crl").read_bytes()])
    assert (v.status, v.intact, v.revoked) == ("revoked", True, True)
    assert verify_main(args + [str(tmp_path / "revoked.crl")]) == pades.EXIT_CERTIFICATE


def test_a_notice_under_an_expired_certificate_is_reported_expired(other_ca, capsys, tmp_path):
    now = datetime.now(timezone.utc)
    signer = notice_pki.new_signer(other_ca, not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    pdf = _signed_with(signer, other_ca, now - timedelta(days=2))
    v = pades.check(pdf, trust_roots=[other_ca.cert])
    assert (v.status, v.intact, v.trusted, v.expired) == ("expired", True, False, True)
    # Signed by a CA the verifier was not given: intact, not trusted.
    assert pades.check(pdf, trust_roots=[notice_pki.new_ca().cert]).status == "untrusted"


def test_revocation_shows_on_the_page_and_in_verify_and_the_bytes_stay(app, case, tmp_path):  # noqa: F811
    i = _issue(app, case)
    before = _download(case["filer"], i)
    (tmp_path / "n.pdf").write_bytes(before)
    ok = _cli(app, "informs", "verify", str(tmp_path / "n.pdf"))
    assert ok.exit_code == 0 and "status: in force" in ok.output and i.number in ok.output, ok.output
    assert post(case["approver"], case["rid"], f"/informs/{i.id}/revoke",
                {"reason": "事実誤認が判明したため"}).status_code == 302
    page = case["filer"].get(f"/informs/{i.id}/notice").get_data(as_text=True)
    assert 'data-test="notice-revoked"' in page and "事実誤認が判明したため" in page
    assert 'data-test="signature-valid"' in page  # the file itself is still the signed one
    assert 'data-test="notice-revoked"' in case["filer"].get(f"/reports/{case['rid']}").get_data(as_text=True)
    assert _download(case["filer"], i) == before
    out = _cli(app, "informs", "verify", str(tmp_path / "n.pdf"))
    assert out.exit_code == 4 and "REVOKED on" in out.output and "事実誤認が判明したため" in out.output, out.output


def test_a_file_the_portal_did_not_issue_is_not_vouched_for(app, case, tmp_path):  # noqa: F811
    i = _issue(app, case)
    (tmp_path / "bad.pdf").write_bytes(_flip(_download(case["filer"], i), 2000))
    out = _cli(app, "informs", "verify", str(tmp_path / "bad.pdf"))
    assert out.exit_code == pades.EXIT_DAMAGED and "DAMAGED" in out.output and "portal record: none" in out.output


def _reseal(app, i, data: bytes, *, sha256: str | None = None) -> None:
    """Store ``data`` as the inform's notice (sealed like any notice), as damage would leave it."""
    from portal import db
    from portal.attachments import services as blobs
    from portal.encryption.opener import current_keyring
    from portal.informs.models import Inform

    with app.app_context():
        s = db.session()
        store = blobs.store_for(app.config["SETTINGS"], db.session)
        sink, kek_id, wrapped = blobs.seal_bytes(s, store, current_keyring(), data, purpose="notice")
        blobs.release(s, sink)
        row = s.get(Inform, i.id)
        row.notice_uid, row.notice_blob_key = sink.uid, sink.blob_key
        row.notice_kek_id, row.notice_wrapped_dek = kek_id, wrapped
        row.notice_sha256, row.notice_size = sha256 or hashlib.sha256(data).hexdigest(), len(data)
        s.commit()


@pytest.mark.parametrize("damage", ["sha256", "signature"])
def test_a_damaged_stored_notice_is_never_served_and_is_audited(app, case, damage):  # noqa: F811
    i = _issue(app, case)
    good = _download(case["filer"], i)
    if damage == "sha256":  # the bytes decrypt, but are not the ones recorded
        _reseal(app, i, good, sha256="0" * 64)
    else:  # bytes recorded consistently, but changed after signing
        _reseal(app, i, _flip(good, len(good) // 3))
    resp = case["filer"].get(f"/informs/{i.id}/notice.pdf")
    assert resp.status_code == 500 and b"%PDF" not in resp.get_data()
    page = case["filer"].get(f"/informs/{i.id}/notice").get_data(as_text=True)
    assert 'data-test="signature-damaged"' in page and 'data-test="signature-valid"' not in page
    events = audit_events(app, "inform.notice.damaged")
    assert len(events) == 2 and all(e.outcome == "failure" for e in events)
    [dl] = [e for e in audit_events(app, "inform.notice.download") if e.outcome != "success"]
    assert (dl.outcome, dl.reason) == ("failure", f"notice_{'sha256_mismatch' if damage == 'sha256' else 'signature_invalid'}")


def test_no_signing_key_refuses_the_approval_and_issues_nothing(app, case, tmp_path):  # noqa: F811
    s = app.config["SETTINGS"]
    i = draft_and_send(case)
    s.notice_signing_p12 = tmp_path / "absent.p12"
    try:
        resp = post(case["approver"], case["rid"], f"/informs/{i.id}/approve", {"comment": "承認"})
        page = case["approver"].get(resp.headers["Location"]).get_data(as_text=True)
    finally:
        s.notice_signing_p12 = None
    assert "署名" in page  # the refusal, in Japanese
    after = _inform(app, case["rid"])
    assert (after.status, after.number, after.notice_blob_key) == ("pending_approval", None, None)
    assert not list((tmp_path / "blobs").glob("??/*")) if (tmp_path / "blobs").exists() else True
    [event] = [e for e in audit_events(app) if e.action == "inform.approve"]
    assert (event.outcome, event.reason) == ("failure", "signing_unavailable")


def test_a_pkcs12_with_a_password_signs_like_the_demo(app, case, tmp_path, other_ca):  # noqa: F811
    s = app.config["SETTINGS"]
    signer = notice_pki.new_signer(other_ca, common_name="Production-like Signing")
    p12 = tmp_path / "ministry.p12"
    p12.write_bytes(notice_pki.p12_bytes(signer, [other_ca.cert], b"pass phrase"))
    p12.chmod(0o600)
    i = draft_and_send(case)
    s.notice_signing_p12, s.notice_signing_password = p12, "pass phrase"
    try:
        assert post(case["approver"], case["rid"], f"/informs/{i.id}/approve").status_code == 302
    finally:
        s.notice_signing_p12, s.notice_signing_password = None, None
    i = _inform(app, case["rid"])
    v = pades.check(_download(case["filer"], i), trust_roots=[other_ca.cert])
    assert v.status == "valid" and "Production-like Signing" in v.signer


def test_the_ca_certificate_is_public(app, tmp_path):
    from cryptography import x509

    resp = app.test_client().get("/notices/ca.pem")
    assert resp.status_code == 200
    cert = x509.load_pem_x509_certificate(resp.get_data())
    assert cert == notice_pki.load_ca(app.config["SETTINGS"].instance_path).cert
    assert "DEMO" in cert.subject.rfc4514_string()


def test_init_creates_the_demo_set_marked_and_private(tmp_path):
    from portal.config import Settings
    from portal.encryption.instance import ensure_instance

    created = ensure_instance(Settings.from_env({}, env="test", instance_path=tmp_path, secret_key="t" * 48))
    for name in notice_pki.DEMO_FILES:
        assert str(tmp_path / name) in created and name.startswith("DEMO-")
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    key, cert, chain = notice_pki.load_p12((tmp_path / notice_pki.DEMO_SIGNING_P12).read_bytes(), None)
    assert "DEMO" in cert.subject.rfc4514_string() and "DEMO" in chain[0].subject.rfc4514_string()
    assert ensure_instance(Settings.from_env({}, env="test", instance_path=tmp_path, secret_key="t" * 48)) == []


def test_signing_is_deterministic_for_the_same_time(other_ca):
    signer = notice_pki.new_signer(other_ca)
    when = datetime(2026, 12, 2, 1, 2, 3, tzinfo=timezone.utc)
    assert _signed_with(signer, other_ca, when) == _signed_with(signer, other_ca, when)


def test_the_english_notice_is_in_english_with_the_japanese_titles_in_brackets(app, case):  # noqa: F811
    i = _issue(app, case)
    en = case["filer"].get(f"/informs/{i.id}/notice.pdf?lang=en").get_data()
    # Signed and stored at issue like the Japanese notice: the same bytes every time.
    assert en == case["approver"].get(f"/informs/{i.id}/notice.pdf?lang=en").get_data()
    assert hashlib.sha256(en).hexdigest() == i.notice_en_sha256 != i.notice_sha256
    v = pades.check(en, trust_roots=[notice_pki.load_ca(app.config["SETTINGS"].instance_path).cert])
    assert v.status == "valid"
    page = case["filer"].get(f"/informs/{i.id}/notice").get_data(as_text=True)
    assert 'data-test="signature-en-valid"' in page
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(en)).pages)
    flat = "".join(text.split())  # the extractor breaks lines inside Japanese words
    assert "Article55-8oftheForeignExchangeandForeignTradeAct(外国為替及び外国貿易法)" in flat
    assert "Meansofredress" in flat and "SecurityExportControlDivision" in flat and "第55条" not in flat


def test_an_unsigned_legacy_notice_is_served_and_said_to_be_unsigned(app, case):  # noqa: F811
    from portal.informs.services import notice_pdf
    from portal import db
    from portal.informs.models import Inform

    i = _issue(app, case)
    with app.app_context():
        legacy = notice_pdf(db.session(), db.session().get(Inform, i.id), "ja")
    _reseal(app, i, legacy)
    assert _download(case["filer"], i) == legacy
    page = case["filer"].get(f"/informs/{i.id}/notice").get_data(as_text=True)
    assert 'data-test="signature-none"' in page


def test_the_notice_page_is_the_readers_only(app, case, factory):  # noqa: F811
    from tests.conftest import sign_in

    i = _issue(app, case)
    other = app.test_client()
    sign_in(other, factory.user("filer", org=factory.org("他社株式会社")))
    assert other.get(f"/informs/{i.id}/notice").status_code in (403, 404)


def test_production_never_offers_the_demo_ca_and_a_key_needs_its_ca(tmp_path):
    from portal.config import ConfigError, Settings
    from portal.encryption.instance import ensure_instance
    from portal.informs import signing

    prod = Settings.from_env({}, env="production", instance_path=tmp_path, secret_key="t" * 48)
    ensure_instance(prod)  # the demo set is there, as after `portal init`
    assert signing.ca_pem(prod) is None
    with pytest.raises(signing.SigningUnavailable, match="PORTAL_NOTICE_SIGNING_P12"):
        signing.material(prod)
    demo = Settings.from_env({}, env="production", demo=True, instance_path=tmp_path, secret_key="t" * 48)
    assert signing.ca_pem(demo) is not None and signing.material(demo).demo
    with pytest.raises(ConfigError, match="PORTAL_NOTICE_CA_CERT"):
        Settings.from_env({"PORTAL_NOTICE_SIGNING_P12": str(tmp_path / "x.p12")}, env="test")
