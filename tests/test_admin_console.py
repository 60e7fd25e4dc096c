"""The system administrator's console (issue 3 items 1–2): users, invitations, roles,
organisations with a checked 法人番号, and the outbox. Never oneself; never content."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal import db
from portal.auth.models import Invitation, User, UserSession
from portal.mail.models import OutboxMessage
from portal.orgs.models import Organisation
from tests.conftest import ERROR_MARK, audit_events, csrf_of, post_form, sign_in

LINK = re.compile(r"https?://[^/\s]+(/invitation/[A-Za-z0-9_\-]+)")


def english(client) -> None:
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_of(html)}).status_code == 302


def rows(app, model, *where):
    with app.app_context():
        out = list(db.session().execute(sa.select(model).where(*where)).scalars())
        db.session().expunge_all()
        return out


def role_of(app, user_id: int) -> str:
    return rows(app, User, User.id == user_id)[0].role


def sessions_of(app, user_id: int) -> int:
    return len(rows(app, UserSession, UserSession.user_id == user_id))


@pytest.fixture
def admin_client(app, client, factory):
    admin = factory.user("admin", level="restricted", compartments=())
    sign_in(client, admin)
    english(client)
    return admin, client


def test_admin_lists_and_searches_users(app, admin_client, factory):
    admin, client = admin_client
    filer = factory.user("filer", email="yamada.taro@sample-denshi.co.jp")
    reviewer = factory.user("reviewer")
    page = client.get("/admin/users")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for u in (admin, filer, reviewer):
        assert u.email in html
    found = client.get("/admin/users?q=sample-denshi").get_data(as_text=True)
    assert filer.email in found and reviewer.email not in found
    detail = client.get(f"/admin/users/{filer.id}")
    assert detail.status_code == 200 and filer.email in detail.get_data(as_text=True)
    assert client.get("/admin/users/999999").status_code == 404


def invite(client, **data):
    return post_form(client, "/admin/users/invite", data, page="/admin/users")


def test_admin_invites_a_government_reviewer(app, admin_client):
    admin, client = admin_client
    gov_org = admin.organisation_id
    resp = invite(client, organisation_id=str(gov_org), name="山田 太郎", email="Taro.Yamada@meti.go.jp",
                  role="reviewer")
    assert resp.status_code == 302
    [inv] = rows(app, Invitation)
    assert (inv.email, inv.role, inv.organisation_id, inv.invited_by_id) == \
        ("taro.yamada@meti.go.jp", "reviewer", gov_org, admin.id)
    [mail] = rows(app, OutboxMessage)
    assert mail.to_addr == "taro.yamada@meti.go.jp"
    path = LINK.search(mail.body).group(1)
    [ev] = audit_events(app, "org.member.invite")
    assert (ev.outcome, ev.actor_id, ev.org_id) == ("success", admin.id, gov_org)

    # The outbox page shows that it was written and to whom (no SMTP in tests), not the link.
    outbox = client.get("/admin/outbox")
    assert outbox.status_code == 200
    html = outbox.get_data(as_text=True)
    assert "taro.yamada@meti.go.jp" in html and "/invitation/••••••••" in html and "Queued" in html
    assert path not in html and path.rsplit("/", 1)[1] not in html

    # Accepting creates a reviewer in the government organisation, who must set up 2FA to sign in.
    invitee = app.test_client()
    page = invitee.get(path)
    assert page.status_code == 200
    password = "経済産業省の窓から富士山が見える 7"
    resp = invitee.post(path, data={"new_password": password, "confirm_password": password,
                                    "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302
    [user] = rows(app, User, User.email == "taro.yamada@meti.go.jp")
    assert (user.role, user.organisation_id, user.totp_enabled_at) == ("reviewer", gov_org, None)
    fresh = app.test_client()
    login = fresh.get("/auth/login")
    resp = fresh.post("/auth/login", data={"email": "taro.yamada@meti.go.jp", "password": password,
                                           "csrf_token": csrf_of(login.get_data(as_text=True))})
    assert resp.status_code == 302 and resp.location.endswith("/auth/2fa/setup")
    assert fresh.get("/account").status_code == 302  # not signed in until 2FA is set up


@pytest.mark.parametrize("org,role,message,reason", [
    ("company", "reviewer", "This role does not belong in this organisation", "role_org_mismatch"),
    ("government", "filer", "This role does not belong in this organisation", "role_org_mismatch"),
    ("government", "superuser", "Choose a role from the list.", "unknown_role"),
    ("forged", "reviewer", "", "invalid_input"),
], ids=["gov-role-in-company", "company-role-in-gov", "unknown-role", "forged-org"])
def test_bad_invitations_are_refused_and_recorded(app, admin_client, factory, org, role, message, reason):
    admin, client = admin_client
    org_id = {"company": lambda: factory.org().id, "government": lambda: admin.organisation_id,
              "forged": lambda: 999999}[org]()
    resp = invite(client, organisation_id=str(org_id), name="X", email="x@example.jp", role=role)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert ERROR_MARK + message in html
    assert rows(app, Invitation) == [] and rows(app, OutboxMessage) == []
    [ev] = audit_events(app, "org.member.invite")
    assert (ev.outcome, ev.reason, ev.actor_id) == ("failure", reason, admin.id)


def test_admin_changes_a_role_and_the_user_is_signed_out(app, admin_client, factory):
    admin, client = admin_client
    reviewer = factory.user("reviewer")
    other = app.test_client()
    sign_in(other, reviewer)
    assert sessions_of(app, reviewer.id) == 1

    resp = post_form(client, f"/admin/users/{reviewer.id}/role", {"role": "approver"},
                     page=f"/admin/users/{reviewer.id}")
    assert resp.status_code == 302
    assert role_of(app, reviewer.id) == "approver"
    assert sessions_of(app, reviewer.id) == 0
    assert other.get("/account").status_code == 302
    [ev] = audit_events(app, "account.role.change")
    assert (ev.outcome, ev.actor_id, ev.target_id) == ("success", admin.id, str(reviewer.id))
    assert '"from":"reviewer"' in ev.details and '"to":"approver"' in ev.details


@pytest.mark.parametrize("role,message,reason", [
    ("superuser", "Choose a role from the list.", "unknown_role"),
    ("filer", "This role does not belong in this organisation", "role_org_mismatch"),
    ("", "Choose a role.", "invalid_input"),
])
def test_bad_role_changes_are_refused_and_recorded(app, admin_client, factory, role, message, reason):
    admin, client = admin_client
    reviewer = factory.user("reviewer")
    other = app.test_client()
    sign_in(other, reviewer)
    resp = post_form(client, f"/admin/users/{reviewer.id}/role", {"role": role}, page=f"/admin/users/{reviewer.id}")
    assert resp.status_code == 400
    assert ERROR_MARK + message in resp.get_data(as_text=True)
    assert role_of(app, reviewer.id) == "reviewer"
    assert sessions_of(app, reviewer.id) == 1
    [ev] = audit_events(app, "account.role.change")
    assert (ev.outcome, ev.reason, ev.target_id) == ("failure", reason, str(reviewer.id))


def test_admin_cannot_change_own_role_or_disable_self(app, admin_client):
    admin, client = admin_client
    page = client.get(f"/admin/users/{admin.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "You cannot change your own role" in html
    csrf = csrf_of(html)
    resp = client.post(f"/admin/users/{admin.id}/role", data={"role": "security_officer", "csrf_token": csrf})
    assert resp.status_code == 403
    resp = client.post(f"/admin/users/{admin.id}/disable", data={"csrf_token": csrf})
    assert resp.status_code == 403
    assert role_of(app, admin.id) == "admin" and rows(app, User, User.id == admin.id)[0].active
    denied = audit_events(app, "access.denied")
    assert [(e.reason, e.target_id) for e in denied] == [("self", str(admin.id))] * 2
    assert audit_events(app, "account.role.change") == []
    assert client.get("/admin/users").status_code == 200  # still signed in


def test_admin_disables_and_enables_a_user(app, admin_client, factory):
    admin, client = admin_client
    filer = factory.user("filer")
    other = app.test_client()
    sign_in(other, filer)
    resp = post_form(client, f"/admin/users/{filer.id}/disable", {}, page=f"/admin/users/{filer.id}")
    assert resp.status_code == 302
    [u] = rows(app, User, User.id == filer.id)
    assert not u.active and sessions_of(app, filer.id) == 0
    assert other.get("/account").status_code == 302
    resp = post_form(client, f"/admin/users/{filer.id}/enable", {}, page=f"/admin/users/{filer.id}")
    assert resp.status_code == 302
    assert rows(app, User, User.id == filer.id)[0].active
    assert [e.action for e in audit_events(app) if e.action.startswith("account.")] == \
        ["account.disable", "account.enable"]


def orgs(app):
    return {o.corporate_number: o for o in rows(app, Organisation)}


CHECK_DIGIT = (ERROR_MARK + "This is not a valid corporate number: its first digit, the check digit", "bad_corporate_number")
LENGTH = (ERROR_MARK + "A corporate number has 13 digits", "corporate_number_length")
DIGITS = (ERROR_MARK + "Enter digits only", "corporate_number_not_digits")


@pytest.mark.parametrize("number, expect", [("2180301018771", CHECK_DIGIT), ("1180301018772", CHECK_DIGIT),
                                            ("118030101877", LENGTH), ("11803010187711", LENGTH),
                                            ("abcdefghijklm", DIGITS), ("1180301O18771", DIGITS)])
def test_organisation_with_bad_corporate_number_is_refused(app, admin_client, number, expect):
    admin, client = admin_client
    before = orgs(app)
    resp = post_form(client, "/admin/organisations", {"name": "株式会社テスト", "corporate_number": number,
                                                      "address": "東京都千代田区"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert expect[0] in html and 'aria-invalid="true"' in html
    assert orgs(app).keys() == before.keys()
    [ev] = audit_events(app, "org.create")
    assert (ev.outcome, ev.reason) == ("failure", expect[1])


def test_organisations_created_and_duplicates_refused(app, admin_client):
    admin, client = admin_client
    resp = post_form(client, "/admin/organisations", {"name": "株式会社サンプル", "corporate_number": "1180301018771",
                                                      "address": "愛知県"})
    assert resp.status_code == 302
    # Full-width digits and hyphens are the same number (DESIGN §10).
    resp = post_form(client, "/admin/organisations", {"name": "ｻﾝﾌﾟﾙ商事", "corporate_number": "７０００－０１２０－５０００２",
                                                      "address": ""})
    assert resp.status_code == 302
    created = orgs(app)
    assert created["1180301018771"].name == "株式会社サンプル" and not created["1180301018771"].is_government
    assert created["7000012050002"].name == "ｻﾝﾌﾟﾙ商事"  # names are never normalised

    resp = post_form(client, "/admin/organisations", {"name": "別の会社", "corporate_number": "1-180301-018771",
                                                      "address": ""})
    assert resp.status_code == 400
    assert ERROR_MARK + "An organisation with this corporate number already exists." in resp.get_data(as_text=True)
    assert len(orgs(app)) == len(created)
    assert [(e.outcome, e.reason) for e in audit_events(app, "org.create")] == \
        [("success", None), ("success", None), ("failure", "duplicate_corporate_number")]
    listing = client.get("/admin/organisations").get_data(as_text=True)
    assert "1180301018771" in listing and "7000012050002" in listing


def test_organisation_without_name_is_refused(app, admin_client):
    admin, client = admin_client
    before = len(orgs(app))
    resp = post_form(client, "/admin/organisations", {"name": "  ", "corporate_number": "1180301018771",
                                                      "address": ""})
    assert resp.status_code == 400
    assert ERROR_MARK + "Enter the organisation" in resp.get_data(as_text=True)
    assert len(orgs(app)) == before


def test_outbox_page_lists_mail(app, admin_client):
    from portal.mail import outbox

    admin, client = admin_client
    with app.app_context():
        outbox.queue(db.session(), "someone@example.co.jp", "件名のテスト", "本文です")
        db.session().commit()
    html = client.get("/admin/outbox").get_data(as_text=True)
    assert "someone@example.co.jp" in html and "件名のテスト" in html and "本文です" in html


def test_empty_outbox(app, admin_client):
    admin, client = admin_client
    assert "The outbox is empty." in client.get("/admin/outbox").get_data(as_text=True)


@pytest.mark.parametrize("role", ["reviewer", "security_officer", "auditor", "org_admin"])
def test_only_admins_reach_the_admin_console(app, client, factory, role):
    user = factory.user(role)
    victim = factory.user("reviewer")
    sign_in(client, user)
    for url in ("/admin/users", "/admin/outbox", "/admin/organisations", f"/admin/users/{victim.id}"):
        assert client.get(url).status_code == 403, url
    csrf = csrf_of(client.get("/account").get_data(as_text=True))
    resp = client.post(f"/admin/users/{victim.id}/role", data={"role": "admin", "csrf_token": csrf})
    # A company user is not told that a government user exists.
    assert resp.status_code == (404 if role == "org_admin" else 403)
    assert role_of(app, victim.id) == "reviewer"


def test_admin_without_valid_clearance_is_refused(app, client, factory):
    """Rule 3 applies to administration too: no valid clearance, no console."""
    from datetime import timedelta

    from portal.core.timeutil import today_jst

    admin = factory.user("admin", expires_on=today_jst() - timedelta(days=1))
    sign_in(client, admin)
    assert client.get("/admin/users").status_code == 403
    assert audit_events(app, "access.denied")[-1].reason == "clearance_expired"
