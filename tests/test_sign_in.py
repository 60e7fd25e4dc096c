"""Sign-in as a person does it: password, TOTP, recovery codes, throttling, sessions."""
from __future__ import annotations

from datetime import timedelta

import re

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, audit_events, csrf_of, current_code, ja, post_form, sign_in

GENERIC_ID = "The e-mail address or password is incorrect."


def _login(client, email, password):
    page = client.get("/auth/login")
    return client.post("/auth/login", data={"email": email, "password": password,
                                            "csrf_token": csrf_of(page.get_data(as_text=True))})


def _session_rows(app, user_id=None):
    from portal import db
    from portal.auth.models import UserSession

    with app.app_context():
        stmt = sa.select(UserSession)
        if user_id is not None:
            stmt = stmt.where(UserSession.user_id == user_id)
        rows = list(db.session().execute(stmt).scalars())
        db.session().expunge_all()
        return rows


def test_wrong_password_and_unknown_account_get_one_generic_message(app, client, factory):
    user = factory.user("filer")
    wrong = _login(client, user.email, "not the password at all")
    unknown = _login(client, "nobody@example.jp", "not the password at all")
    for resp in (wrong, unknown):
        body = resp.get_data(as_text=True)
        assert resp.status_code == 200
        assert ja(GENERIC_ID) in body
        assert "<title>エラー：" in body
    reasons = [e.reason for e in audit_events(app, "auth.signin")]
    assert reasons == ["bad_password", "unknown_account"]
    assert client.get("/account").status_code == 302  # still signed out


def test_malformed_email_is_explained_beside_the_field(client):
    resp = _login(client, "not-an-email", "whatever whatever")
    body = resp.get_data(as_text=True)
    assert 'aria-invalid="true"' in body
    assert 'id="email-error"' in body and "＊" in body  # a Japanese page marks the error with ＊


def test_session_id_changes_at_sign_in_and_sign_out_is_post_only(app, client, factory):
    user = factory.user("filer")
    client.get("/auth/login")
    before = client.get_cookie("ttr_session").value
    sign_in(client, user)
    after = client.get_cookie("ttr_session").value
    assert before != after
    assert client.get("/auth/logout").status_code == 405
    home = client.get("/")
    resp = client.post("/auth/logout", data={"csrf_token": csrf_of(home.get_data(as_text=True))})
    assert resp.status_code == 302
    assert client.get("/account").status_code == 302
    assert _session_rows(app, user.id) == []
    assert [e.action for e in audit_events(app) if e.action == "auth.signout"] == ["auth.signout"]


def test_government_user_needs_totp_and_a_replayed_code_is_refused(app, client, factory):
    user = factory.user("reviewer")
    resp = _login(client, user.email, PASSWORD)
    assert resp.location.endswith("/auth/2fa")
    assert client.get("/account").status_code == 302  # not signed in after the password alone
    code = current_code(user.totp_secret)
    page = client.get("/auth/2fa")
    ok = client.post("/auth/2fa", data={"code": code, "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert ok.status_code == 302
    assert client.get("/account").status_code == 200
    # Sign out and try the very same code again: a replay.
    home = client.get("/")
    client.post("/auth/logout", data={"csrf_token": csrf_of(home.get_data(as_text=True))})
    _login(client, user.email, PASSWORD)
    page = client.get("/auth/2fa")
    again = client.post("/auth/2fa", data={"code": code, "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert again.status_code == 200
    assert ja("The code is incorrect or has already been used. Enter the current code.") in again.get_data(as_text=True)
    assert client.get("/account").status_code == 302
    assert [e.outcome for e in audit_events(app, "auth.2fa")] == ["success", "failure"]


def test_expired_code_is_refused(client, factory):
    user = factory.user("reviewer")
    _login(client, user.email, PASSWORD)
    page = client.get("/auth/2fa")
    resp = client.post("/auth/2fa", data={"code": current_code(user.totp_secret, -10),
                                          "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 200
    assert client.get("/account").status_code == 302


def test_government_user_without_totp_must_enrol_and_gets_recovery_codes(app, client, factory):
    from portal import db
    from portal.auth.models import User
    from portal.auth.totp import code_at
    import time

    user = factory.user("auditor")
    with app.app_context():
        u = db.session().get(User, user.id)
        u.totp_secret = None
        u.totp_enabled_at = None
        db.session().commit()
    resp = _login(client, user.email, PASSWORD)
    assert resp.location.endswith("/auth/2fa/setup")
    page = client.get("/auth/2fa/setup").get_data(as_text=True)
    assert "<svg" in page
    import re

    secret = re.search(r'data-test="totp-secret">([A-Z2-7]+)<', page).group(1)
    done = client.post("/auth/2fa/setup", data={"code": code_at(secret, time.time()), "csrf_token": csrf_of(page)})
    body = done.get_data(as_text=True)
    codes = re.findall(r"<code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code>", body)
    assert len(codes) == 10
    assert client.get("/account").status_code == 200
    # A recovery code signs in once, and only once.
    for attempt in range(2):
        client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True))})
        _login(client, user.email, PASSWORD)
        page = client.get("/auth/2fa?recovery=1")
        r = client.post("/auth/2fa?recovery=1", data={"code": codes[0].upper(),
                                                       "csrf_token": csrf_of(page.get_data(as_text=True))})
        assert (r.status_code == 302) is (attempt == 0)


def test_throttling_per_account_and_address_tells_when_to_retry_and_holds_for_the_right_password(app, client, factory):
    # More in tests/test_sign_in_throttle.py: the owner elsewhere is not held, spraying, codes.
    user = factory.user("filer")
    limit = app.config["SETTINGS"].login_free_failures
    for _ in range(limit):
        _login(client, user.email, "wrong wrong wrong")
    blocked = _login(client, user.email, PASSWORD)
    assert blocked.status_code == 429
    body = blocked.get_data(as_text=True)
    template = ja("Too many failed attempts. Try again after %(time)s (in about %(n)d minutes).", time="@T@", n=999)
    before_time, after_time = template.split("@T@")
    m = re.search(re.escape(before_time) + r"(\d{2}:\d{2})" + re.escape(after_time.split("999")[0]) + r"(\d+)", body)
    assert m, "the page must say when to retry"
    assert int(m.group(2)) == 1  # the first delay: a minute
    assert client.get("/account").status_code == 302


def test_throttling_per_address_across_accounts(app, client, factory):
    s = app.config["SETTINGS"]
    for i in range(s.login_max_failures_address):
        _login(client, f"someone{i}@example.jp", "wrong wrong wrong")
    user = factory.user("filer")
    assert _login(client, user.email, PASSWORD).status_code == 429


def test_idle_and_absolute_timeouts_end_the_session(app, client, factory):
    from portal import db
    from portal.auth.models import UserSession

    user = factory.user("filer")
    sign_in(client, user)
    for field, delta in (("last_seen_at", timedelta(minutes=31)), ("created_at", timedelta(hours=12, minutes=1))):
        with app.app_context():
            row = db.session().execute(sa.select(UserSession).where(UserSession.user_id == user.id)).scalar_one()
            setattr(row, field, getattr(row, field) - delta)
            db.session().commit()
        assert client.get("/account").status_code == 302
        sign_in(client, user)


def test_password_change_revokes_every_other_session(app, factory):
    user = factory.user("filer")
    a, b = app.test_client(), app.test_client()
    sign_in(a, user)
    sign_in(b, user)
    new = "a new long passphrase for 2026"
    resp = post_form(a, "/account/password", {"current_password": PASSWORD, "new_password": new,
                                              "confirm_password": new}, page="/account")
    assert resp.status_code == 302
    assert a.get("/account").status_code == 200  # the session that changed it goes on
    assert b.get("/account").status_code == 302  # every other one ended
    assert len(_session_rows(app, user.id)) == 1
    c = app.test_client()
    assert _login(c, user.email, PASSWORD).status_code == 200  # the old password no longer works
    assert _login(c, user.email, new).status_code == 302


@pytest.mark.parametrize("password, msgid, n", [
    ("short pw", "Enter a password of at least %(n)d characters.", 12),
    ("password1234", "This password is too common. Choose a password that is hard to guess.", None),
    ("x" * 129, "Enter a password of at most %(n)d characters.", 128),
])
def test_password_rules(client, factory, password, msgid, n):
    user = factory.user("filer")
    sign_in(client, user)
    resp = post_form(client, "/account/password", {"current_password": PASSWORD, "new_password": password,
                                                   "confirm_password": password}, page="/account")
    assert resp.status_code == 400
    assert (ja(msgid, n=n) if n else ja(msgid)) in resp.get_data(as_text=True)


def test_password_is_rehashed_when_parameters_rise(app, client, factory):
    from portal import db
    from portal.auth.models import User

    user = factory.user("filer")
    settings = app.config["SETTINGS"]
    old = settings.argon2_memory_kib
    settings.argon2_memory_kib = 128
    try:
        sign_in(client, user)
    finally:
        settings.argon2_memory_kib = old
    with app.app_context():
        assert "m=128," in db.session().get(User, user.id).password_hash
    assert audit_events(app, "auth.password.rehash")


@pytest.mark.parametrize("target, expected", [
    ("/account", "/account"),
    ("https://evil.example/", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
])
def test_only_same_site_next_redirects(client, factory, target, expected):
    user = factory.user("filer")
    client.get("/auth/login", query_string={"next": target})
    resp = sign_in(client, user, follow=False)
    assert resp.location == expected


def test_missing_or_wrong_csrf_token_is_refused_with_a_message(app, client, factory):
    user = factory.user("filer")
    client.get("/auth/login")
    for data in ({"email": user.email, "password": PASSWORD},
                 {"email": user.email, "password": PASSWORD, "csrf_token": "forged"}):
        resp = client.post("/auth/login", data=data)
        assert resp.status_code == 400
        assert ja("Your form expired") in resp.get_data(as_text=True)
    assert audit_events(app, "auth.signin") == []


def test_oversized_body_is_refused(client):
    resp = client.post("/auth/login", data={"email": "a@b.jp", "password": "x" * (3 * 1024 * 1024)})
    assert resp.status_code == 413


def test_disabled_account_cannot_sign_in(app, client, factory):
    from portal import db
    from portal.auth.models import User

    user = factory.user("filer")
    with app.app_context():
        db.session().get(User, user.id).active = False
        db.session().commit()
    assert ja(GENERIC_ID) in _login(client, user.email, PASSWORD).get_data(as_text=True)
