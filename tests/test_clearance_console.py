"""The security officer's console (issue 3 item 2): grant, renew and revoke clearances with
compartments, history kept; bad input refused, recorded, nothing changed; never oneself;
facility clearances."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal import db
from portal.access.models import Clearance
from portal.access.services import default_expiry
from portal.auth.models import UserSession
from portal.core.timeutil import today_jst
from portal.orgs.models import Organisation
from tests.conftest import ERROR_MARK, audit_events, csrf_of, post_form, sign_in

REASON = "適性評価の結果に基づく付与"


def english(client) -> None:
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_of(html)}).status_code == 302


def grants(app, user_id: int) -> list[dict]:
    """The clearance history of a user, oldest first, as plain values."""
    with app.app_context():
        rows = db.session().execute(sa.select(Clearance).where(Clearance.user_id == user_id)
                                    .order_by(Clearance.id)).scalars()
        out = [dict(id=c.id, level=c.level, compartments=[t.code for t in c.compartments], expires_on=c.expires_on,
                    reason=c.reason, granted_by_id=c.granted_by_id, superseded=c.superseded_at is not None,
                    revoked=c.revoked_at is not None, revoke_reason=c.revoke_reason, revoked_by_id=c.revoked_by_id)
               for c in rows]
        db.session().rollback()
        return out


def sessions_of(app, user_id: int) -> int:
    with app.app_context():
        n = len(db.session().execute(sa.select(UserSession.id).where(UserSession.user_id == user_id)).all())
        db.session().rollback()
        return n


@pytest.fixture
def officer_client(app, client, factory):
    officer = factory.user("security_officer")
    sign_in(client, officer)
    english(client)
    return officer, client


def grant(client, user_id: int, **data):
    form = {"level": "confidential", "compartments": ["T01", "T08"], "expires_on": "", "reason": REASON}
    form.update(data)
    return post_form(client, f"/security/clearances/{user_id}/grant", form, page=f"/security/clearances/{user_id}")


def test_grant_with_compartments_keeps_history(app, officer_client, factory):
    officer, client = officer_client
    reviewer = factory.user("reviewer", level="restricted", compartments=("T01",))
    reviewer_client = app.test_client()
    sign_in(reviewer_client, reviewer)

    listing = client.get("/security/clearances")
    assert listing.status_code == 200 and reviewer.name in listing.get_data(as_text=True)

    resp = grant(client, reviewer.id)
    assert resp.status_code == 302 and resp.location.endswith(f"/security/clearances/{reviewer.id}")

    old, new = grants(app, reviewer.id)
    assert old["superseded"] and not old["revoked"] and (old["level"], old["compartments"]) == ("restricted", ["T01"])
    assert not new["superseded"] and not new["revoked"]
    assert (new["level"], new["compartments"], new["reason"], new["granted_by_id"]) == \
        ("confidential", ["T01", "T08"], REASON, officer.id)
    assert new["expires_on"] == default_expiry(today_jst())  # 10 years, the statutory default
    assert today_jst().replace(year=today_jst().year + 10) - new["expires_on"] <= timedelta(days=1)

    # A grant that only widens access leaves the holder signed in (tests/test_sessions_on_grant.py
    # covers narrowing, which signs them out everywhere).
    assert sessions_of(app, reviewer.id) == 1
    assert reviewer_client.get("/account").status_code == 200

    [ev] = audit_events(app, "clearance.renew")
    assert (ev.outcome, ev.actor_id, ev.target_id) == ("success", officer.id, str(reviewer.id))
    assert '"compartments":["T01","T08"]' in ev.details and '"previous_level":"restricted"' in ev.details

    page = client.get(f"/security/clearances/{reviewer.id}").get_data(as_text=True)
    assert "Superseded" in page and "Current" in page and REASON in page


def test_first_grant_to_someone_without_clearance(app, officer_client, factory):
    officer, client = officer_client
    reviewer = factory.user("reviewer", level=None)
    assert grants(app, reviewer.id) == []
    resp = grant(client, reviewer.id, level="restricted", compartments=["T05"], expires_on="2030-03-31")
    assert resp.status_code == 302
    [g] = grants(app, reviewer.id)
    assert (g["level"], g["compartments"], g["expires_on"]) == ("restricted", ["T05"], date(2030, 3, 31))
    [ev] = audit_events(app, "clearance.grant")
    assert ev.outcome == "success"


def test_renewal_supersedes_and_extends(app, officer_client, factory):
    officer, client = officer_client
    reviewer = factory.user("reviewer", expires_on=today_jst() + timedelta(days=20))
    later = today_jst() + timedelta(days=365 * 5)
    resp = grant(client, reviewer.id, level="confidential", compartments=["T01"], expires_on=later.isoformat(),
                 reason="更新")
    assert resp.status_code == 302
    first, second = grants(app, reviewer.id)
    assert first["superseded"] and first["expires_on"] == today_jst() + timedelta(days=20)
    assert not second["superseded"] and second["expires_on"] == later and second["reason"] == "更新"
    # Renew again: the history grows, exactly one grant is current.
    assert grant(client, reviewer.id, reason="再更新").status_code == 302
    history = grants(app, reviewer.id)
    assert len(history) == 3 and [h["superseded"] for h in history] == [True, True, False]
    assert len(audit_events(app, "clearance.renew")) == 2


def test_revoke_with_reason(app, officer_client, factory):
    officer, client = officer_client
    reviewer = factory.user("reviewer")
    other = app.test_client()
    sign_in(other, reviewer)

    resp = post_form(client, f"/security/clearances/{reviewer.id}/revoke", {"reason": "異動のため"},
                     page=f"/security/clearances/{reviewer.id}")
    assert resp.status_code == 302
    [g] = grants(app, reviewer.id)
    assert g["revoked"] and g["revoke_reason"] == "異動のため" and g["revoked_by_id"] == officer.id
    assert sessions_of(app, reviewer.id) == 0
    [ev] = audit_events(app, "clearance.revoke")
    assert (ev.outcome, ev.target_id) == ("success", str(reviewer.id))
    page = client.get(f"/security/clearances/{reviewer.id}").get_data(as_text=True)
    assert "異動のため" in page and "Revoked" in page

    # Revoking again: nothing to revoke, refused and recorded.
    resp = post_form(client, f"/security/clearances/{reviewer.id}/revoke", {"reason": "again"},
                     page=f"/security/clearances/{reviewer.id}")
    assert resp.status_code == 400
    assert audit_events(app, "clearance.revoke")[-1].reason == "no_clearance"


@pytest.mark.parametrize("data,message,reason", [
    ({"level": "top_secret"}, "Choose a clearance level from the list.", "unknown_level"),
    ({"level": ""}, "Choose a clearance level.", "invalid_input"),
    ({"compartments": ["T01", "T99"]}, "Choose compartments from the list of designated technologies.",
     "unknown_compartment"),
    ({"expires_on": "2020-01-01"}, "The expiry date must be in the future.", "expiry_in_past"),
    ({"expires_on": "__today__"}, "The expiry date must be in the future.", "expiry_in_past"),
    ({"expires_on": "2030-02-30"}, "", "invalid_input"),
    ({"reason": "   "}, "Enter the reason for this grant.", "invalid_input"),
], ids=["unknown-level", "no-level", "unknown-compartment", "expiry-past", "expiry-today", "bad-date", "empty-reason"])
def test_bad_grant_input_is_refused_recorded_and_changes_nothing(app, officer_client, factory, data, message, reason):
    officer, client = officer_client
    reviewer = factory.user("reviewer")
    other = app.test_client()
    sign_in(other, reviewer)
    before = grants(app, reviewer.id)
    if data.get("expires_on") == "__today__":
        data = {"expires_on": today_jst().isoformat()}

    resp = grant(client, reviewer.id, **data)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert ERROR_MARK + message in html and "form-group--error" in html
    assert "There is a problem" in html
    assert grants(app, reviewer.id) == before
    assert sessions_of(app, reviewer.id) == 1  # nothing happened to the holder either
    [ev] = audit_events(app, "clearance.grant")
    assert (ev.outcome, ev.reason, ev.actor_id, ev.target_id) == ("failure", reason, officer.id, str(reviewer.id))
    assert audit_events(app, "clearance.renew") == []


def test_empty_revocation_reason_is_refused_and_recorded(app, officer_client, factory):
    officer, client = officer_client
    reviewer = factory.user("reviewer")
    before = grants(app, reviewer.id)
    resp = post_form(client, f"/security/clearances/{reviewer.id}/revoke", {"reason": "  "},
                     page=f"/security/clearances/{reviewer.id}")
    assert resp.status_code == 400
    assert ERROR_MARK + "Enter the reason for the revocation." in resp.get_data(as_text=True)
    assert grants(app, reviewer.id) == before
    [ev] = audit_events(app, "clearance.revoke")
    assert (ev.outcome, ev.reason) == ("failure", "invalid_input")


def test_granting_yourself_is_403_and_recorded(app, officer_client):
    officer, client = officer_client
    before = grants(app, officer.id)
    page = client.get(f"/security/clearances/{officer.id}")
    assert page.status_code == 200
    assert "You cannot change your own clearance" in page.get_data(as_text=True)
    csrf = csrf_of(page.get_data(as_text=True))
    resp = client.post(f"/security/clearances/{officer.id}/grant",
                       data={"level": "csi", "compartments": ["T01"], "reason": "self", "csrf_token": csrf})
    assert resp.status_code == 403
    resp = client.post(f"/security/clearances/{officer.id}/revoke", data={"reason": "self", "csrf_token": csrf})
    assert resp.status_code == 403
    assert grants(app, officer.id) == before
    denied = audit_events(app, "access.denied")
    assert [(e.reason, e.actor_id, e.target_id) for e in denied] == [("self", officer.id, str(officer.id))] * 2
    assert audit_events(app, "clearance.grant") == [] and audit_events(app, "clearance.renew") == []


def test_reviewer_cannot_grant(app, client, factory):
    reviewer = factory.user("reviewer")
    colleague = factory.user("reviewer")
    sign_in(client, reviewer)
    assert client.get("/security/clearances").status_code == 403
    csrf = csrf_of(client.get("/account").get_data(as_text=True))
    before = grants(app, colleague.id)
    resp = client.post(f"/security/clearances/{colleague.id}/grant",
                       data={"level": "csi", "compartments": ["T01", "T02"], "reason": "x", "csrf_token": csrf})
    assert resp.status_code == 403
    assert grants(app, colleague.id) == before
    assert [e.reason for e in audit_events(app, "access.denied")] == ["role", "role"]


@pytest.mark.parametrize("role", ["admin", "auditor", "org_admin"])
def test_other_roles_cannot_grant(app, client, factory, role):
    user = factory.user(role)
    target = factory.user("reviewer")
    sign_in(client, user)
    csrf = csrf_of(client.get("/account").get_data(as_text=True))
    resp = client.post(f"/security/clearances/{target.id}/grant",
                       data={"level": "csi", "compartments": ["T01"], "reason": "x", "csrf_token": csrf})
    # A company user is not even told that a government user exists.
    assert resp.status_code == (404 if role == "org_admin" else 403)
    assert len(grants(app, target.id)) == 1


def test_unknown_user_id_is_404(app, officer_client):
    officer, client = officer_client
    assert client.get("/security/clearances/999999").status_code == 404
    csrf = csrf_of(client.get("/security/clearances").get_data(as_text=True))
    resp = client.post("/security/clearances/999999/grant",
                       data={"level": "public", "reason": "x", "csrf_token": csrf})
    assert resp.status_code == 404


def facility(app, org_id):
    with app.app_context():
        o = db.session().get(Organisation, org_id)
        out = (o.facility_clearance_from, o.facility_clearance_until)
        db.session().rollback()
        return out


def test_facility_clearance_set_and_refused(app, officer_client, factory):
    officer, client = officer_client
    org = factory.org(name="株式会社適合")
    member = factory.user("filer", org=org)
    member_client = app.test_client()
    sign_in(member_client, member)
    url = f"/security/organisations/{org.id}/facility"
    assert client.get(url).status_code == 200

    resp = post_form(client, url, {"valid_from": "2026-04-01", "valid_until": "2031-03-31"})
    assert resp.status_code == 302
    assert facility(app, org.id) == (date(2026, 4, 1), date(2031, 3, 31))
    [ev] = audit_events(app, "org.facility_clearance.set")
    assert (ev.outcome, ev.target_id, ev.actor_id) == ("success", str(org.id), officer.id)
    assert '"until":"2031-03-31"' in ev.details
    assert sessions_of(app, member.id) == 0  # members' access changed: they sign in again

    # End before start: refused, message, nothing changed, recorded.
    resp = post_form(client, url, {"valid_from": "2031-04-01", "valid_until": "2026-03-31"})
    assert resp.status_code == 400
    assert ERROR_MARK + "The end date must be on or after the start date." in resp.get_data(as_text=True)
    assert facility(app, org.id) == (date(2026, 4, 1), date(2031, 3, 31))
    failure = audit_events(app, "org.facility_clearance.set")[-1]
    assert (failure.outcome, failure.reason) == ("failure", "end_before_start")

    # One date only: refused.
    resp = post_form(client, url, {"valid_from": "2026-04-01", "valid_until": ""})
    assert resp.status_code == 400
    assert ERROR_MARK + "Enter both dates" in resp.get_data(as_text=True)
    # A malformed date: refused and recorded.
    resp = post_form(client, url, {"valid_from": "2026-13-01", "valid_until": "2031-03-31"})
    assert resp.status_code == 400
    assert audit_events(app, "org.facility_clearance.set")[-1].reason == "invalid_input"
    assert facility(app, org.id) == (date(2026, 4, 1), date(2031, 3, 31))

    # Both empty removes it.
    assert post_form(client, url, {"valid_from": "", "valid_until": ""}).status_code == 302
    assert facility(app, org.id) == (None, None)


def test_reviewer_cannot_set_facility_clearance(app, client, factory):
    org = factory.org()
    reviewer = factory.user("reviewer")
    sign_in(client, reviewer)
    url = f"/security/organisations/{org.id}/facility"
    assert client.get(url).status_code == 403
    csrf = csrf_of(client.get("/account").get_data(as_text=True))
    resp = client.post(url, data={"valid_from": "2026-04-01", "valid_until": "2031-03-31", "csrf_token": csrf})
    assert resp.status_code == 403
    assert facility(app, org.id) == (None, None)


def test_org_admin_cannot_set_own_facility_clearance(app, client, factory):
    org = factory.org()
    admin = factory.user("org_admin", org=org)
    sign_in(client, admin)
    csrf = csrf_of(client.get("/account").get_data(as_text=True))
    resp = client.post(f"/security/organisations/{org.id}/facility",
                       data={"valid_from": "2026-04-01", "valid_until": "2031-03-31", "csrf_token": csrf})
    assert resp.status_code == 403
    assert facility(app, org.id) == (None, None)


def test_forged_user_id_is_recorded(app, officer_client):
    officer, client = officer_client
    csrf = csrf_of(client.get("/security/clearances").get_data(as_text=True))
    resp = client.post("/security/clearances/999999/grant", data={"level": "public", "reason": "x", "csrf_token": csrf})
    assert resp.status_code == 404
    events = audit_events(app, "access.denied")
    assert events and events[-1].target_id == "999999" and events[-1].actor_id == officer.id
