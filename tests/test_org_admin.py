"""A company's org_admin manages their own organisation's members (issue 3 item 1): one-time,
expiring invitation links through the outbox, disabling, and never another organisation."""
from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from portal import db
from portal.auth.models import Invitation, User, UserSession
from portal.db import utcnow
from portal.mail.models import OutboxMessage
from tests.conftest import ERROR_MARK, audit_events, csrf_of, post_form, sign_in

NEW_PASSWORD = "山の上の図書館で静かに読む 2026"
LINK = re.compile(r"https?://[^/\s]+(/invitation/([A-Za-z0-9_\-]+))")


def english(client) -> None:
    """Switch the UI to English, so that messages can be read back whatever the catalogues say."""
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    resp = client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_of(html)})
    assert resp.status_code == 302


def rows(app, model, *where):
    with app.app_context():
        out = list(db.session().execute(sa.select(model).where(*where)).scalars())
        db.session().expunge_all()
        return out


def count(app, model, *where) -> int:
    return len(rows(app, model, *where))


def org_admin_client(app, client, factory, org=None):
    org = org or factory.org(name="株式会社サンプル電子", facility=True)
    admin = factory.user("org_admin", org=org)
    sign_in(client, admin)
    english(client)
    return org, admin


def invite(client, email="hanako.suzuki@example.co.jp", name="鈴木 花子", role="filer"):
    return post_form(client, "/organisation/members/invite", {"name": name, "email": email, "role": role},
                     page="/organisation/members")


def link_in_outbox(app, email: str) -> str:
    [msg] = rows(app, OutboxMessage, OutboxMessage.to_addr == email)
    m = LINK.search(msg.body)
    assert m, msg.body
    return m.group(1)


def test_invitation_creates_the_account_once(app, client, factory):
    org, admin = org_admin_client(app, client, factory)
    resp = invite(client)
    assert resp.status_code == 302 and resp.location.endswith("/organisation/members")

    [inv] = rows(app, Invitation)
    assert (inv.email, inv.role, inv.organisation_id, inv.invited_by_id) == \
        ("hanako.suzuki@example.co.jp", "filer", org.id, admin.id)
    assert inv.expires_at > utcnow() + timedelta(days=6)
    path = link_in_outbox(app, "hanako.suzuki@example.co.jp")
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 32 and token not in inv.token_hash  # only the hash is stored
    [ev] = audit_events(app, "org.member.invite")
    assert (ev.outcome, ev.actor_id, ev.org_id) == ("success", admin.id, org.id)
    assert token not in ev.details
    members_page = client.get("/organisation/members").get_data(as_text=True)
    assert "&lt;hanako.suzuki@example.co.jp&gt;" in members_page  # listed as pending

    # The invitee, on another browser, follows the link and sets a password.
    invitee = app.test_client()
    english(invitee)
    page = invitee.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "hanako.suzuki@example.co.jp" in html and "株式会社サンプル電子" in html
    resp = invitee.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD,
                                    "csrf_token": csrf_of(html)})
    assert resp.status_code == 302 and resp.location.endswith("/auth/login")

    [user] = rows(app, User, User.email == "hanako.suzuki@example.co.jp")
    assert (user.role, user.organisation_id, user.name, user.active) == ("filer", org.id, "鈴木 花子", True)
    assert user.password_hash and NEW_PASSWORD not in user.password_hash
    [inv] = rows(app, Invitation)
    assert inv.accepted_at is not None
    [join] = audit_events(app, "org.member.join")
    assert join.actor_id == user.id

    # The new member signs in on a fresh client.
    fresh = app.test_client()
    home = sign_in(fresh, SimpleNamespace(email="hanako.suzuki@example.co.jp", totp_secret=None),
                   password=NEW_PASSWORD)
    assert home.status_code == 200 and "鈴木 花子" in home.get_data(as_text=True)
    assert count(app, UserSession, UserSession.user_id == user.id) == 1

    # The link works once.
    again = app.test_client()
    assert again.get(path).status_code == 404
    resp = again.post(path, data={"new_password": "another long passphrase 99",
                                  "confirm_password": "another long passphrase 99",
                                  "csrf_token": csrf_of(again.get("/auth/login").get_data(as_text=True))})
    assert resp.status_code == 404
    assert count(app, User, User.email == "hanako.suzuki@example.co.jp") == 1


def test_expired_invitation_shows_the_404_page(app, client, factory):
    org_admin_client(app, client, factory)
    assert invite(client, email="late@example.co.jp").status_code == 302
    path = link_in_outbox(app, "late@example.co.jp")
    with app.app_context():
        s = db.session()
        s.execute(sa.update(Invitation).values(expires_at=utcnow() - timedelta(minutes=1)))
        s.commit()

    invitee = app.test_client()
    english(invitee)
    resp = invitee.get(path)
    assert resp.status_code == 404
    assert "This invitation link cannot be used" in resp.get_data(as_text=True)
    csrf = csrf_of(invitee.get("/auth/login").get_data(as_text=True))
    resp = invitee.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD,
                                    "csrf_token": csrf})
    assert resp.status_code == 404
    assert count(app, User, User.email == "late@example.co.jp") == 0
    # ... and it is no longer listed as pending.
    assert "&lt;late@example.co.jp&gt;" not in client.get("/organisation/members").get_data(as_text=True)


def test_forged_invitation_token_is_404(app, client):
    for token in ("x", "A" * 43, "A" * 200):
        assert client.get(f"/invitation/{token}").status_code == 404


def test_org_admin_cannot_disable_a_member_of_another_organisation(app, client, factory):
    org, admin = org_admin_client(app, client, factory)
    stranger = factory.user("filer")  # another company
    other = app.test_client()
    sign_in(other, stranger)
    assert stranger.organisation_id != org.id

    resp = post_form(client, f"/organisation/members/{stranger.id}/disable", {}, page="/organisation/members")
    assert resp.status_code == 404
    [ev] = audit_events(app, "access.denied")
    assert (ev.reason, ev.actor_id, ev.outcome, ev.target_id) == \
        ("other_organisation", admin.id, "denied", str(stranger.id))
    [target] = rows(app, User, User.id == stranger.id)
    assert target.active and target.disabled_at is None
    assert count(app, UserSession, UserSession.user_id == stranger.id) == 1
    assert audit_events(app, "account.disable") == []
    assert other.get("/account").status_code == 200

    # A non-existent id answers the same 404 as another organisation's.
    resp = post_form(client, "/organisation/members/999999/disable", {}, page="/organisation/members")
    assert resp.status_code == 404


def test_org_admin_disables_and_enables_own_member(app, client, factory):
    org, admin = org_admin_client(app, client, factory)
    member = factory.user("filer", org=org)
    member_client = app.test_client()
    sign_in(member_client, member)

    resp = post_form(client, f"/organisation/members/{member.id}/disable", {}, page="/organisation/members")
    assert resp.status_code == 302
    [m] = rows(app, User, User.id == member.id)
    assert not m.active and m.disabled_at is not None
    assert count(app, UserSession, UserSession.user_id == member.id) == 0
    assert member_client.get("/account").status_code == 302
    [ev] = audit_events(app, "account.disable")
    assert (ev.actor_id, ev.target_id) == (admin.id, str(member.id))

    resp = post_form(client, f"/organisation/members/{member.id}/enable", {}, page="/organisation/members")
    assert resp.status_code == 302
    assert rows(app, User, User.id == member.id)[0].active


def test_org_admin_cannot_disable_themselves(app, client, factory):
    org, admin = org_admin_client(app, client, factory)
    resp = post_form(client, f"/organisation/members/{admin.id}/disable", {}, page="/organisation/members")
    assert resp.status_code == 403
    assert audit_events(app, "access.denied")[-1].reason == "self"
    assert rows(app, User, User.id == admin.id)[0].active


def test_filer_cannot_reach_members_page(app, client, factory):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    colleague = factory.user("filer", org=org)
    sign_in(client, filer)
    assert client.get("/organisation/members").status_code == 403
    [ev] = audit_events(app, "access.denied")
    assert (ev.reason, ev.actor_id) == ("role", filer.id)

    html = client.get("/account").get_data(as_text=True)
    resp = client.post("/organisation/members/invite", data={"name": "x", "email": "x@example.co.jp",
                                                             "role": "filer", "csrf_token": csrf_of(html)})
    assert resp.status_code == 403
    resp = client.post(f"/organisation/members/{colleague.id}/disable", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 403
    assert count(app, Invitation) == 0 and count(app, OutboxMessage) == 0
    assert rows(app, User, User.id == colleague.id)[0].active


def test_government_user_cannot_reach_members_page(app, client, factory):
    reviewer = factory.user("reviewer")
    sign_in(client, reviewer)
    assert client.get("/organisation/members").status_code == 403


def test_malformed_email_is_refused_and_creates_nothing(app, client, factory):
    org_admin_client(app, client, factory)
    for bad in ("hanako@@example.co.jp", "hanako.example.co.jp", "hanako@", ""):
        resp = invite(client, email=bad)
        assert resp.status_code == 400, bad
        html = resp.get_data(as_text=True)
        assert "e-mail address" in html and ERROR_MARK in html and 'aria-invalid="true"' in html, bad
    assert count(app, Invitation) == 0 and count(app, OutboxMessage) == 0
    refused = audit_events(app, "org.member.invite")
    assert len(refused) == 4 and {e.outcome for e in refused} == {"failure"}


def test_full_width_email_is_accepted(app, client, factory):
    org_admin_client(app, client, factory)
    assert invite(client, email="ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏ．ｊｐ").status_code == 302
    assert [i.email for i in rows(app, Invitation)] == ["hanako@example.co.jp"]


def test_org_admin_cannot_invite_government_roles_or_unknown_roles(app, client, factory):
    org_admin_client(app, client, factory)
    for role in ("reviewer", "admin", "security_officer", "superuser"):
        resp = invite(client, email=f"{role}@example.co.jp", role=role)
        assert resp.status_code == 400, role
        assert "Choose a role from the list." in resp.get_data(as_text=True)
    assert count(app, Invitation) == 0 and count(app, OutboxMessage) == 0
    reasons = [e.reason for e in audit_events(app, "org.member.invite")]
    assert reasons == ["unknown_role"] * 4


def test_duplicate_email_is_refused(app, client, factory):
    org, _ = org_admin_client(app, client, factory)
    existing = factory.user("filer", org=org)
    resp = invite(client, email=existing.email.upper())
    assert resp.status_code == 400
    assert "already exists" in resp.get_data(as_text=True)
    assert count(app, Invitation) == 0


def test_weak_password_is_refused_with_a_message(app, client, factory):
    org_admin_client(app, client, factory)
    assert invite(client, email="weak@example.co.jp").status_code == 302
    path = link_in_outbox(app, "weak@example.co.jp")
    invitee = app.test_client()
    english(invitee)
    for password, message in (("password1234", "too common"), ("short", "at least 12 characters"),
                              ("weakweakweak-example", "e-mail address or name")):
        html = invitee.get(path).get_data(as_text=True)
        resp = invitee.post(path, data={"new_password": password, "confirm_password": password,
                                        "csrf_token": csrf_of(html)})
        assert resp.status_code in (200, 400), password
        body = resp.get_data(as_text=True)
        assert message in body and ERROR_MARK in body, password
    # Mismatched confirmation too.
    html = invitee.get(path).get_data(as_text=True)
    resp = invitee.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x",
                                    "csrf_token": csrf_of(html)})
    assert "do not match" in resp.get_data(as_text=True)
    assert count(app, User, User.email == "weak@example.co.jp") == 0
    [inv] = rows(app, Invitation)
    assert inv.accepted_at is None  # still usable
    assert invitee.get(path).status_code == 200
