"""The API's informs and RFI answers (issue 19): the company system reads an issued inform
without METI's internal rationale, downloads the same notice bytes as the web, acknowledges it;
and answers a request for information, which puts the case back under review as on the web."""
from __future__ import annotations

import hashlib
import io
from types import SimpleNamespace

from tests.api_helpers import auth, issue_token, post_json
from tests.conftest import audit_events
from tests.inform_helpers import make_case
from tests.test_informs import DRAFT, _inform, _report_status, draft_and_send, post


def test_inform_read_notice_and_acknowledge(app, factory, tmp_path):
    case = make_case(app, factory, tmp_path)
    rid = case["rid"]
    admin = factory.user("org_admin", org=SimpleNamespace(id=case["u_filer"].organisation_id))
    _tid, token = issue_token(app, case["u_filer"], admin=admin, scopes=["informs", "reports:read"])
    i = draft_and_send(case)
    assert client_get(app, f"/api/v1/reports/{rid}/informs", token).get_json()["items"] == []  # METI's draft
    assert post(case["approver"], rid, f"/informs/{i.id}/approve", {"comment": "承認"}).status_code == 302
    c = app.test_client()
    listed = c.get(f"/api/v1/reports/{rid}/informs", headers=auth(token)).get_json()["items"]
    assert [x["number"] for x in listed] == [_inform(app, rid).number]
    assert DRAFT["internal_rationale"] not in str(listed) and listed[0]["reasons"] == DRAFT["reasons"]
    pdf = c.get(listed[0]["notice_url"], headers=auth(token))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert hashlib.sha256(pdf.data).hexdigest() == listed[0]["notice_sha256"] == _inform(app, rid).notice_sha256
    no = post_json(c, f"/api/v1/informs/{i.id}/acknowledge", token, {"confirm": False})
    assert no.status_code == 422 and _inform(app, rid).acknowledged_at is None
    ok = post_json(c, f"/api/v1/informs/{i.id}/acknowledge", token, {"confirm": True})
    assert ok.status_code == 200 and ok.get_json()["acknowledged_at"].endswith("+00:00")
    assert _inform(app, rid).acknowledged_by_id == case["u_filer"].id
    assert [e.outcome for e in audit_events(app, "inform.acknowledge")] == ["failure", "success"]


def client_get(app, url, token):
    return app.test_client().get(url, headers=auth(token))


def test_answering_a_request_for_information(app, factory, tmp_path):
    case = make_case(app, factory, tmp_path)
    rid = case["rid"]
    admin = factory.user("org_admin", org=SimpleNamespace(id=case["u_filer"].organisation_id))
    _tid, token = issue_token(app, case["u_filer"], admin=admin, scopes=["messages", "reports:read"])
    from portal.calendar import add_business_days
    from portal.core.timeutil import today_jst
    from tests.test_rfi_due_date import _send

    resp = _send(case["reviewer"], rid, {"body": "契約書の写しを提出してください。", "classification": "restricted",
                                         "request": "1", "due_date": add_business_days(today_jst(), 10).isoformat()})
    assert resp.status_code == 302 and _report_status(app, rid) == "awaiting_response"
    c = app.test_client()
    thread = c.get(f"/api/v1/reports/{rid}/messages", headers=auth(token)).get_json()["items"]
    assert thread[0]["is_request"] and thread[0]["from_government"] and thread[0]["due_date"]
    answer = post_json(c, f"/api/v1/reports/{rid}/messages", token,
                       {"body": "添付のとおりです。", "classification": "restricted", "reply_to": thread[0]["id"]})
    assert answer.status_code == 201, answer.get_json()
    assert _report_status(app, rid) == "under_review"  # the answer resumes the review, as on the web
    report = c.get(f"/api/v1/reports/{rid}", headers=auth(token)).get_json()
    assert report["status"] == "under_review" and report["response_due"] is None


def test_uploads_keep_the_web_format_and_size_rules(app, factory, tmp_path):
    org = factory.org(facility=True)
    admin = factory.user("org_admin", org=org)
    filer = factory.user("filer", org=org)
    _tid, token = issue_token(app, filer, admin=admin)
    c = app.test_client()
    rid = post_json(c, "/api/v1/reports", token, {}).get_json()["id"]
    url = f"/api/v1/reports/{rid}/attachments"

    def upload(data: bytes, name: str):
        return c.post(url, headers=auth(token), content_type="multipart/form-data",
                      data={"file": (io.BytesIO(data), name)})

    exe = upload(b"MZ\x90\x00" + b"\x00" * 200, "tool.pdf")
    assert exe.status_code == 422 and exe.get_json()["reason"] == "type_not_allowed"
    assert exe.get_json()["errors"][0]["field"] == "file"
    settings = app.config["SETTINGS"]
    saved = settings.max_upload_bytes
    settings.max_upload_bytes = 1024
    try:
        big = upload(b"%PDF-1.4\n" + b"x" * 4096, "big.pdf")
    finally:
        settings.max_upload_bytes = saved
    assert big.status_code == 413 and big.mimetype == "application/problem+json"
    assert c.get(url, headers=auth(token)).get_json()["items"] == []
    assert [e.reason for e in audit_events(app, "attachment.upload")] == ["type_not_allowed", "too_large"]
