"""Changes bite at once (issue 3 item 5): a revoked or expired clearance, a disabled account,
a changed role or a removed compartment denies on the very next request of a signed-in
client, and the services that make such changes end every session of that user."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from portal import db
from portal.access import services as access_services
from portal.access.models import Clearance
from portal.access.policy import Action, Labels, decide
from portal.access.subject import current_clearance, subject_for
from portal.admin import services as admin_services
from portal.auth.models import User, UserSession
from portal.core.timeutil import today_jst
from portal.orgs import services as org_services
from portal.orgs.models import Organisation
from tests.conftest import audit_events, sign_in


def sessions_of(app, user_id: int) -> int:
    with app.app_context():
        n = db.session().execute(sa.select(sa.func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == user_id)).scalar_one()
        db.session().rollback()
        return n


def change(app, fn):
    """Run ``fn(session)`` in its own transaction, as a console or CLI command would."""
    with app.app_context():
        s = db.session()
        result = fn(s)
        s.commit()
        return result


def is_sign_in_redirect(resp) -> bool:
    return resp.status_code == 302 and urlsplit(resp.location).path == "/auth/login"


# An auditor's page: one event of the trail (AUDIT_READ). The sign-in itself writes event 1.
AUDIT_PAGE = "/audit/1"


def signed_in_auditor(app, client, factory):
    auditor = factory.user("auditor", level="restricted", compartments=())
    officer = factory.user("security_officer")
    sign_in(client, auditor)
    assert audit_events(app)[0].seq == 1
    assert client.get(AUDIT_PAGE).status_code == 200
    assert sessions_of(app, auditor.id) == 1
    return auditor, officer


def test_revoked_clearance_signs_the_user_out_at_once(app, client, factory):
    auditor, officer = signed_in_auditor(app, client, factory)

    def revoke(s):
        access_services.revoke(s, target=s.get(User, auditor.id), reason="適性評価の取消し",
                               actor=s.get(User, officer.id))

    change(app, revoke)
    assert sessions_of(app, auditor.id) == 0
    resp = client.get(AUDIT_PAGE)
    assert is_sign_in_redirect(resp)
    [ev] = audit_events(app, "clearance.revoke")
    assert (ev.outcome, ev.target_id, ev.actor_id) == ("success", str(auditor.id), officer.id)

    # Signing in again does not bring the access back: no clearance, the policy says 403.
    other = app.test_client()
    with app.app_context():
        s = db.session()
        s.execute(sa.update(User).where(User.id == auditor.id).values(totp_last_counter=None))
        s.commit()
    sign_in(other, auditor)
    assert other.get(AUDIT_PAGE).status_code == 403
    denied = audit_events(app, "access.denied")
    assert denied[-1].reason == "no_clearance" and denied[-1].actor_id == auditor.id


def test_expired_clearance_is_refused_on_the_next_request(app, client, factory):
    """Expiry is a date passing, not an action: no session is revoked, so the very next
    request must be refused by the policy itself."""
    auditor, _ = signed_in_auditor(app, client, factory)
    change(app, lambda s: s.execute(sa.update(Clearance).where(Clearance.user_id == auditor.id)
                                    .values(expires_on=today_jst() - timedelta(days=1))))
    resp = client.get(AUDIT_PAGE)
    assert resp.status_code == 403
    assert sessions_of(app, auditor.id) == 1  # still signed in; just refused
    [ev] = audit_events(app, "access.denied")
    assert (ev.reason, ev.actor_id, ev.outcome) == ("clearance_expired", auditor.id, "denied")
    assert "audit.read" in ev.details


def test_clearance_expiring_today_still_works(app, client, factory):
    auditor, _ = signed_in_auditor(app, client, factory)
    change(app, lambda s: s.execute(sa.update(Clearance).where(Clearance.user_id == auditor.id)
                                    .values(expires_on=today_jst())))
    assert client.get(AUDIT_PAGE).status_code == 200


def test_disabled_account_signs_the_user_out_at_once(app, client, factory):
    auditor, _ = signed_in_auditor(app, client, factory)
    admin = factory.user("admin")

    change(app, lambda s: org_services.set_active(s, target=s.get(User, auditor.id), active=False,
                                                  actor=s.get(User, admin.id), ip=None))
    assert sessions_of(app, auditor.id) == 0
    assert is_sign_in_redirect(client.get(AUDIT_PAGE))
    [ev] = audit_events(app, "account.disable")
    assert ev.target_id == str(auditor.id) and ev.actor_id == admin.id
    # And the password no longer opens a session.
    other = app.test_client()
    page = other.get("/auth/login")
    from tests.conftest import PASSWORD, csrf_of

    resp = other.post("/auth/login", data={"email": auditor.email, "password": PASSWORD,
                                           "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 200 and sessions_of(app, auditor.id) == 0
    assert audit_events(app, "auth.signin")[-1].reason == "disabled"


def test_account_disabled_directly_in_the_database_is_refused_too(app, client, factory):
    """Even when something flips the flag without the service (so no session is revoked),
    the next request is not served as that user."""
    auditor, _ = signed_in_auditor(app, client, factory)
    change(app, lambda s: s.execute(sa.update(User).where(User.id == auditor.id).values(active=False)))
    assert sessions_of(app, auditor.id) == 1
    assert is_sign_in_redirect(client.get(AUDIT_PAGE))


def test_changed_role_signs_the_user_out_at_once(app, client, factory):
    auditor, _ = signed_in_auditor(app, client, factory)
    admin = factory.user("admin")

    change(app, lambda s: admin_services.change_role(s, target=s.get(User, auditor.id), role="reviewer",
                                                     actor=s.get(User, admin.id)))
    assert sessions_of(app, auditor.id) == 0
    assert is_sign_in_redirect(client.get(AUDIT_PAGE))
    [ev] = audit_events(app, "account.role.change")
    assert ev.target_id == str(auditor.id) and '"from":"auditor"' in ev.details and '"to":"reviewer"' in ev.details
    with app.app_context():
        assert db.session().get(User, auditor.id).role == "reviewer"


def test_role_changed_directly_in_the_database_is_refused_on_the_next_request(app, client, factory):
    """The policy reads the role from the database on every request, not from the session."""
    auditor, _ = signed_in_auditor(app, client, factory)
    change(app, lambda s: s.execute(sa.update(User).where(User.id == auditor.id).values(role="reviewer")))
    assert client.get(AUDIT_PAGE).status_code == 403
    assert audit_events(app, "access.denied")[-1].reason == "role"


def test_removed_compartment_signs_out_and_is_denied_at_once(app, client, factory):
    reviewer = factory.user("reviewer", level="confidential", compartments=("T01", "T08"))
    officer = factory.user("security_officer")
    sign_in(client, reviewer)
    assert client.get("/account").status_code == 200
    report = Labels(org_id=12345, classification="restricted", compartments=frozenset({"T01"}))

    with app.app_context():
        s = db.session()
        before = subject_for(s, s.get(User, reviewer.id), today_jst())
        assert decide(before, Action.REPORT_VIEW, report, today=today_jst()).allowed
        s.rollback()

    change(app, lambda s: access_services.grant(
        s, target=s.get(User, reviewer.id), level="confidential", compartments=["T08"], expires_on=None,
        reason="T01 の担当を外れた", actor=s.get(User, officer.id), today=today_jst()))

    assert sessions_of(app, reviewer.id) == 0
    assert is_sign_in_redirect(client.get("/account"))
    with app.app_context():
        s = db.session()
        after = subject_for(s, s.get(User, reviewer.id), today_jst())
        assert after.compartments == frozenset({"T08"})
        d = decide(after, Action.REPORT_VIEW, report, today=today_jst())
        assert not d.allowed and d.reason == "compartment"
    [ev] = audit_events(app, "clearance.renew")
    assert '"previous_compartments":["T01","T08"]' in ev.details and '"compartments":["T08"]' in ev.details


def test_facility_clearance_change_signs_out_the_companys_members(app, client, factory):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    colleague = factory.user("org_admin", org=org)
    outsider = factory.user("filer")
    officer = factory.user("security_officer")
    sign_in(client, filer)
    other = app.test_client()
    sign_in(other, outsider)
    assert client.get("/account").status_code == 200

    today = today_jst()
    change(app, lambda s: org_services.set_facility_clearance(
        s, org=s.get(Organisation, org.id), valid_from=today - timedelta(days=400),
        valid_until=today - timedelta(days=1), actor=s.get(User, officer.id), ip=None))

    assert sessions_of(app, filer.id) == 0 and sessions_of(app, colleague.id) == 0
    assert is_sign_in_redirect(client.get("/account"))
    # Another company's member is untouched.
    assert sessions_of(app, outsider.id) == 1
    assert other.get("/account").status_code == 200
    with app.app_context():
        s = db.session()
        assert subject_for(s, s.get(User, filer.id), today).org_facility_valid is False


def test_sessions_of_other_users_survive_a_revocation(app, client, factory):
    auditor, officer = signed_in_auditor(app, client, factory)
    second = factory.user("auditor", level="public", compartments=())
    other = app.test_client()
    sign_in(other, second)

    change(app, lambda s: access_services.revoke(s, target=s.get(User, auditor.id), reason="異動",
                                                 actor=s.get(User, officer.id)))
    assert is_sign_in_redirect(client.get(AUDIT_PAGE))
    assert other.get(AUDIT_PAGE).status_code == 200
    assert sessions_of(app, second.id) == 1
    with app.app_context():
        assert current_clearance(db.session(), auditor.id) is None


def _second_current_grant(app, user_id: int) -> None:
    """Two grants in force at once, as two security officers granting at the same moment leave."""
    change(app, lambda s: s.add(Clearance(user_id=user_id, level="csi", reason="concurrent grant",
                                          expires_on=today_jst() + timedelta(days=30))))


def test_revocation_ends_every_grant_in_force(app, client, factory):
    """Fail closed: revoking must not let an older grant that is still in force come back."""
    auditor, officer = signed_in_auditor(app, client, factory)
    _second_current_grant(app, auditor.id)

    change(app, lambda s: access_services.revoke(s, target=s.get(User, auditor.id), reason="退職",
                                                 actor=s.get(User, officer.id)))
    with app.app_context():
        s = db.session()
        assert current_clearance(s, auditor.id) is None
        assert subject_for(s, s.get(User, auditor.id), today_jst()).clearance_level is None
    other = app.test_client()
    change(app, lambda s: s.execute(sa.update(User).where(User.id == auditor.id).values(totp_last_counter=None)))
    sign_in(other, auditor)
    assert other.get(AUDIT_PAGE).status_code == 403


def test_new_grant_supersedes_every_grant_in_force(app, client, factory):
    auditor, officer = signed_in_auditor(app, client, factory)
    _second_current_grant(app, auditor.id)
    change(app, lambda s: access_services.grant(
        s, target=s.get(User, auditor.id), level="public", compartments=[], expires_on=None,
        reason="見直し", actor=s.get(User, officer.id), today=today_jst()))
    with app.app_context():
        rows = list(db.session().execute(sa.select(Clearance).where(
            Clearance.user_id == auditor.id, Clearance.superseded_at.is_(None), Clearance.revoked_at.is_(None))).scalars())
        assert [c.level for c in rows] == ["public"]


def test_auditor_list_page_renders(app, client, factory):
    auditor, _ = signed_in_auditor(app, client, factory)
    assert client.get("/audit/").status_code == 200
