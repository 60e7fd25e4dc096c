"""Informs: every server-side rule, attempted through crafted requests as well."""
from __future__ import annotations

import hashlib
import threading

import pytest
import sqlalchemy as sa

from portal.core.timeutil import today_jst
from tests.conftest import audit_events, csrf_of, sign_in
from tests.inform_helpers import approve, make_case

pytest.importorskip("portal.informs.notice")


@pytest.fixture
def case(app, factory, tmp_path):
    return make_case(app, factory, tmp_path)


def post(client, rid, url, data=None):
    token = csrf_of(client.get(f"/reports/{rid}").get_data(as_text=True))
    if url.endswith("/approve"):  # from the confirmation page, as a person approves
        return approve(client, int(url.split("/")[2]), data, fallback_token=token)
    return client.post(url, data={**(data or {}), "csrf_token": token})


def _inform(app, rid):
    from portal import db
    from portal.informs.models import Inform

    with app.app_context():
        i = db.session().execute(sa.select(Inform).where(Inform.report_id == rid).order_by(Inform.id.desc())).scalars().first()
        db.session().expunge_all()
        return i


def _report_status(app, rid):
    from portal import db
    from portal.reports.models import Report

    with app.app_context():
        return db.session().get(Report, rid).status


DRAFT = {"legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "技術の流出防止措置が不十分であるため。",
         "conditions": "", "internal_rationale": "相手方が軍事関連企業と取引関係にある。", "rationale_classification": "confidential"}


def draft_and_send(case):
    rid = case["rid"]
    assert post(case["reviewer"], rid, f"/reports/{rid}/informs", DRAFT).status_code == 302
    i = _inform(case["reviewer"].application, rid)
    assert i.status == "draft"
    post(case["reviewer"], rid, f"/informs/{i.id}/send")
    return _inform(case["reviewer"].application, rid)


def test_draft_approve_acknowledge(app, case):
    rid = case["rid"]
    i = draft_and_send(case)
    assert i.status == "pending_approval"
    # The company sees nothing of a draft.
    assert "技術の流出防止措置" not in case["filer"].get(f"/reports/{rid}").get_data(as_text=True)
    assert case["filer"].get(f"/informs/{i.id}/notice.pdf").status_code == 404
    resp = post(case["approver"], rid, f"/informs/{i.id}/approve", {"comment": "承認"})
    assert resp.status_code == 302
    i = _inform(app, rid)
    year = today_jst().year
    assert i.status == "issued" and i.number == f"INF-{year}-0001" and _report_status(app, rid) == "inform_issued"
    company_page = case["filer"].get(f"/reports/{rid}").get_data(as_text=True)
    assert "技術の流出防止措置" in company_page and "軍事関連企業" not in company_page
    a = case["filer"].get(f"/informs/{i.id}/notice.pdf").data  # read each stream before the next request
    b = case["approver"].get(f"/informs/{i.id}/notice.pdf").data
    assert a[:5] == b"%PDF-" and a == b
    assert hashlib.sha256(a).hexdigest() == i.notice_sha256
    en = case["filer"].get(f"/informs/{i.id}/notice.pdf?lang=en").data
    assert en[:5] == b"%PDF-" and en != a
    post(case["filer"], rid, f"/informs/{i.id}/acknowledge", {"confirm": "y"})
    i = _inform(app, rid)
    assert i.acknowledged_by_id == case["u_filer"].id and i.acknowledged_at is not None
    post(case["filer"], rid, f"/informs/{i.id}/licence", {"licence_application_ref": "2027-経-000123"})
    assert _inform(app, rid).licence_application_ref == "2027-経-000123"
    assert 'data-test="ack-status"' in case["reviewer"].get(f"/reports/{rid}").get_data(as_text=True)
    actions = [e.action for e in audit_events(app) if e.action.startswith("inform.")]
    for a_ in ("inform.draft", "inform.send_for_approval", "inform.issue", "inform.acknowledge"):
        assert a_ in actions


def test_self_approval_is_refused(app, case, factory):
    rid = case["rid"]
    # An approver drafts; the same approver cannot approve it.
    approver = case["approver"]
    post(approver, rid, f"/reports/{rid}/informs", DRAFT)
    i = _inform(app, rid)
    post(approver, rid, f"/informs/{i.id}/send")
    assert post(approver, rid, f"/informs/{i.id}/approve").status_code == 403
    assert _inform(app, rid).status == "pending_approval"
    denied = audit_events(app, "access.denied")[-1]
    assert (denied.reason, denied.target_id, denied.outcome) == ("four_eyes", str(i.id), "denied")


@pytest.mark.parametrize("who, compartments, expect", [
    ("reviewer", ("T01",), 403),   # no approver role
    ("approver", ("T08",), 403),   # lacks the case's compartment
    ("filer", ("T01",), 404),      # a company user: a pending inform is not even visible
])
def test_approval_needs_the_role_and_the_compartment(app, case, factory, who, compartments, expect):
    rid = case["rid"]
    i = draft_and_send(case)
    user = factory.user(who, compartments=compartments) if who != "filer" else case["u_filer"]
    client = app.test_client()
    sign_in(client, user)
    token = csrf_of(client.get("/").get_data(as_text=True))
    resp = client.post(f"/informs/{i.id}/approve", data={"csrf_token": token})
    assert resp.status_code == expect
    assert _inform(app, rid).status == "pending_approval"


def test_rejected_or_issued_drafts_cannot_be_approved(app, case, factory):
    rid = case["rid"]
    i = draft_and_send(case)
    post(case["approver"], rid, f"/informs/{i.id}/reject", {"comment": "根拠を補強してください"})
    assert _inform(app, rid).status == "rejected"
    post(case["approver"], rid, f"/informs/{i.id}/approve")
    assert _inform(app, rid).status == "rejected"
    post(case["reviewer"], rid, f"/informs/{i.id}/send")
    post(case["approver"], rid, f"/informs/{i.id}/approve")
    first = _inform(app, rid)
    assert first.status == "issued"
    post(case["approver"], rid, f"/informs/{i.id}/approve")
    again = _inform(app, rid)
    assert again.number == first.number and again.notice_sha256 == first.notice_sha256


def test_acknowledgement_from_another_organisation_is_not_found(app, case, factory):
    rid = case["rid"]
    i = draft_and_send(case)
    post(case["approver"], rid, f"/informs/{i.id}/approve")
    stranger = app.test_client()
    sign_in(stranger, factory.user("filer", compartments=("T01",)))
    token = csrf_of(stranger.get("/").get_data(as_text=True))
    assert stranger.post(f"/informs/{i.id}/acknowledge", data={"csrf_token": token, "confirm": "y"}).status_code == 404
    assert _inform(app, rid).acknowledged_at is None


def test_revocation_with_reason(app, case):
    rid = case["rid"]
    i = draft_and_send(case)
    post(case["approver"], rid, f"/informs/{i.id}/approve")
    post(case["approver"], rid, f"/informs/{i.id}/revoke", {"reason": ""})
    assert _inform(app, rid).status == "issued"
    post(case["reviewer"], rid, f"/informs/{i.id}/revoke", {"reason": "誤り"})
    assert _inform(app, rid).status == "issued"
    post(case["approver"], rid, f"/informs/{i.id}/revoke", {"reason": "事実関係の誤りが判明したため"})
    i = _inform(app, rid)
    assert i.status == "revoked" and i.revoke_reason == "事実関係の誤りが判明したため"
    assert "事実関係の誤り" in case["filer"].get(f"/reports/{rid}").get_data(as_text=True)


def test_two_approvers_at_once_issue_exactly_once(app, case, factory):
    from portal import db
    from portal.access.subject import subject_for
    from portal.attachments import services as attachments
    from portal.encryption.opener import keyring_for
    from portal.auth.models import User
    from portal.informs import services
    from portal.informs.models import Inform

    i = draft_and_send(case)
    second = factory.user("approver", compartments=("T01",))
    results = []
    barrier = threading.Barrier(2)

    def act(user_id):
        with app.app_context():
            barrier.wait(timeout=30)  # before any database access: SQLite's write lock would block the other
            s = db.session()
            settings = app.config["SETTINGS"]
            try:
                user = s.get(User, user_id)
                inform = s.get(Inform, i.id)
                done = services.approve(s, inform, comment=None, confirmed=services.confirmation(inform),
                                        subject=subject_for(s, user, today_jst()), actor=user,
                                        today=today_jst(), ip=None, store=attachments.store_for(settings, lambda: s),
                                        keyring=keyring_for(settings.keyring_path), base_url="http://x")
                s.commit()
                done._pending_sink.commit()
                results.append("issued")
            except Exception as exc:  # noqa: BLE001
                s.rollback()
                results.append(type(exc).__name__)

    threads = [threading.Thread(target=act, args=(u.id,)) for u in (case["u_approver"], second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("issued") == 1, results
    with app.app_context():
        n = db.session().execute(sa.select(sa.func.count()).select_from(Inform).where(Inform.number.is_not(None))).scalar_one()
    assert n == 1
