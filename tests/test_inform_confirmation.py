"""An inform is issued only from a confirmation page that shows the notice as it will be sent;
the approvers are told (in the portal and by mail) that a draft waits; the queue says 決裁待ち."""
from __future__ import annotations

import re

import sqlalchemy as sa

from portal.core.security import DOWNLOAD_CSP
from tests.conftest import audit_events, csrf_of, sign_in
from tests.inform_helpers import approve, approve_form, confirmation_of
from tests.test_informs import DRAFT, _inform, case, draft_and_send, post  # noqa: F401  (case: a fixture)


def _rows(app, sql: str, **params):
    from portal import db

    with app.app_context():
        return db.session().execute(sa.text(sql), params).all()


def test_the_case_page_offers_no_one_click_issue(app, case):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    page = case["approver"].get(f"/reports/{rid}").get_data(as_text=True)
    assert f'/informs/{i.id}/confirm' in page
    assert f'/informs/{i.id}/approve' not in page  # no form on the case page posts the approval
    assert confirmation_of(page) is None


def test_the_confirmation_page_shows_the_notice_as_it_will_be_sent(app, case):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    resp = case["approver"].get(f"/informs/{i.id}/confirm")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    preview = html[html.index('data-test="notice-preview"'):html.index("</section>", html.index('data-test="notice-preview"'))]
    for text in (DRAFT["reasons"], DRAFT["legal_basis"], "株式会社インフォーム", "インフォーム通知", "（発出時に採番）",
                 "理由", "根拠法令"):
        assert text in preview, text
    assert DRAFT["internal_rationale"] not in html  # the company never reads it, so the notice never shows it
    assert f'action="/informs/{i.id}/approve"' in html and confirmation_of(html)
    # Opening the page issues nothing.
    assert _inform(app, rid).status == "pending_approval" and _inform(app, rid).number is None


def test_the_preview_pdf_is_rendered_and_not_stored(app, case):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    resp = case["approver"].get(f"/informs/{i.id}/preview.pdf")
    assert resp.status_code == 200 and resp.data[:5] == b"%PDF-"
    assert resp.headers["Content-Security-Policy"] == DOWNLOAD_CSP
    assert resp.headers["Cache-Control"] == "no-store"
    after = _inform(app, rid)
    assert after.status == "pending_approval" and after.notice_blob_key is None and after.number is None
    # Nobody but an approver who may decide it gets a preview.
    assert case["reviewer"].get(f"/informs/{i.id}/preview.pdf").status_code == 403
    assert case["filer"].get(f"/informs/{i.id}/preview.pdf").status_code == 404


def test_the_old_one_click_post_issues_nothing(app, case):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    token = csrf_of(case["approver"].get(f"/reports/{rid}").get_data(as_text=True))
    resp = case["approver"].post(f"/informs/{i.id}/approve", data={"csrf_token": token, "comment": "承認"})
    assert resp.status_code == 302 and resp.location.endswith(f"/informs/{i.id}/confirm")
    assert _inform(app, rid).status == "pending_approval"
    assert any(e.reason == "not_confirmed" for e in audit_events(app) if e.action == "inform.approve")
    # A made-up digest fares no better.
    resp = case["approver"].post(f"/informs/{i.id}/approve", data={"csrf_token": token, "confirmed": "0" * 64})
    assert _inform(app, rid).status == "pending_approval"
    # From the confirmation page it issues.
    assert approve(case["approver"], i.id, {"comment": "承認"}).status_code == 302
    assert _inform(app, rid).status == "issued"


def test_a_confirmation_of_an_earlier_draft_does_not_issue_the_changed_one(app, case):  # noqa: F811
    rid = case["rid"]
    i = draft_and_send(case)
    stale = approve_form(case["approver"], i.id)
    assert stale is not None
    post(case["approver"], rid, f"/informs/{i.id}/reject", {"comment": "理由を補強してください"})
    post(case["reviewer"], rid, f"/informs/{i.id}/edit", {**DRAFT, "reasons": "補強した理由。"})
    post(case["reviewer"], rid, f"/informs/{i.id}/send")
    assert _inform(app, rid).status == "pending_approval"
    case["approver"].post(f"/informs/{i.id}/approve", data=stale)
    assert _inform(app, rid).status == "pending_approval"
    html = case["approver"].get(f"/informs/{i.id}/confirm").get_data(as_text=True)
    assert "補強した理由。" in html
    assert approve(case["approver"], i.id).status_code == 302
    assert _inform(app, rid).status == "issued"


def test_the_drafter_gets_no_confirmation_page(app, case):  # noqa: F811
    rid = case["rid"]
    approver = case["approver"]
    post(approver, rid, f"/reports/{rid}/informs", DRAFT)
    i = _inform(app, rid)
    post(approver, rid, f"/informs/{i.id}/send")
    resp = approver.get(f"/informs/{i.id}/confirm")
    assert resp.status_code in (302, 403)
    assert confirmation_of(resp.get_data(as_text=True)) is None
    assert audit_events(app, "access.denied")[-1].reason == "four_eyes"


def test_approvers_are_notified_and_mailed_when_a_draft_is_sent(app, case, factory):  # noqa: F811
    rid = case["rid"]
    other_compartment = factory.user("approver", compartments=("T08",))
    i = draft_and_send(case)
    notes = _rows(app, "SELECT user_id FROM notifications WHERE kind = 'approval' AND report_id = :r", r=rid)
    assert {u for (u,) in notes} == {case["u_approver"].id}  # not the drafter, not one without the compartment
    mails = [to for (to,) in _rows(app, "SELECT to_addr FROM outbox")]
    assert case["u_approver"].email in mails and other_compartment.email not in mails
    assert case["u_reviewer"].email not in mails
    body = _rows(app, "SELECT body FROM outbox WHERE to_addr = :a", a=case["u_approver"].email)[-1][0]
    assert f"/reports/{rid}" in body and DRAFT["reasons"] not in body  # a link, never the content
    listed = case["approver"].get("/notifications").get_data(as_text=True)
    assert re.search(rf'href="/reports/{rid}"', listed)
    assert i.status == "pending_approval"


def test_the_queue_marks_a_case_awaiting_approval(app, case):  # noqa: F811
    rid = case["rid"]

    def status_cell():
        html = case["reviewer"].get("/review/queue").get_data(as_text=True)
        m = re.search(rf'href="/reports/{rid}".*?data-test="status">', html, re.DOTALL)
        assert m, "the case is not in the queue"
        return html[m.start():m.end() + 200]

    assert "tag--status-under_review" in status_cell()
    draft_and_send(case)
    cell = status_cell()
    assert "tag--status-awaiting_approval" in cell and "tag--status-under_review" not in cell


def test_a_second_user_signed_in_sees_the_same_preview(app, case, factory):  # noqa: F811
    """Another approver with the compartment opens the same page and issues it."""
    rid = case["rid"]
    i = draft_and_send(case)
    second = app.test_client()
    sign_in(second, factory.user("approver", compartments=("T01",)))
    assert approve(second, i.id).status_code == 302
    assert _inform(app, rid).status == "issued"
