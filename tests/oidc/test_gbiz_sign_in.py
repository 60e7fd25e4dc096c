"""Sign-in with GビズID against a real OpenID provider (panva's oidc-provider, tests/oidc/provider.mjs):
first sign-in, linking, the lifecycle, and every way a provider's answer can be bad."""
from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import PASSWORD, audit_events, csrf_of, current_code, ja
from tests.oidc.harness import configure, oidc_provider, path_of, unconfigure  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("gbiz")


@pytest.fixture
def gbiz(app, oidc_provider):  # noqa: F811
    configure(app, oidc_provider)
    yield oidc_provider
    unconfigure(app)


def start(client) -> str:
    resp = client.get("/auth/gbiz")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return resp.location


def gbiz_sign_in(client, provider, login: str, *, tamper: str | None = None, person=None):
    """The person clicks 「GビズIDでログイン」, signs in on the provider's page and comes back."""
    callback = provider.sign_in(start(client), login, person)
    if tamper:
        provider.tamper(tamper)
    return client.get(path_of(callback))


def users(app):
    from portal import db
    from portal.auth.models import GbizLink, User

    with app.app_context():
        s = db.session()
        rows = [(u.email, u.role, u.organisation_id, u.active) for u in s.execute(sa.select(User).order_by(User.id)).scalars()]
        links = [(link.user_id, link.subject, link.corporate_number, link.account_type)
                 for link in s.execute(sa.select(GbizLink).order_by(GbizLink.id)).scalars()]
        s.rollback()
        return rows, links


def last_failure(app):
    events = [e for e in audit_events(app, "auth.gbiz.signin") if e.outcome != "success"]
    assert events, "no audit event for the refused sign-in"
    return events[-1]


# ---------------------------------------------------------------- first sign-in

def test_member_signs_in_first_time_as_filer_of_the_registered_company(app, client, factory, gbiz):
    org = factory.org("株式会社テスト電子", facility=True)
    gbiz.account("gbiz-member-1", account_type="member", corporate_number=org.corporate_number,
                 email="Hanako.Sato@example.jp", name="佐藤 花子")
    resp = gbiz_sign_in(client, gbiz, "gbiz-member-1")
    assert resp.status_code == 302 and resp.location == "/", resp.get_data(as_text=True)[:800]
    home = client.get("/")
    assert home.status_code == 200 and "佐藤 花子" in home.get_data(as_text=True)
    account = client.get("/account").get_data(as_text=True)
    assert 'data-test="gbiz-only"' in account and "/account/password" not in account  # no password to change
    rows, links = users(app)
    assert rows == [("hanako.sato@example.jp", "filer", org.id, True)]
    assert [(s, n, t) for _, s, n, t in links] == [("gbiz-member-1", org.corporate_number, "member")]
    created = audit_events(app, "account.create")[-1]
    assert created.org_id == org.id and '"via":"gbiz"' in created.details
    signin = audit_events(app, "auth.signin")[-1]
    assert signin.outcome == "success" and '"method":"gbiz"' in signin.details
    # No clearance until a security officer grants one (DESIGN §3): the report list is refused.
    from portal import db
    from portal.access.models import Clearance

    with app.app_context():
        assert db.session().execute(sa.select(sa.func.count()).select_from(Clearance)).scalar_one() == 0


def test_prime_becomes_org_admin_and_a_second_sign_in_reuses_the_account(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("prime-1", account_type="prime", corporate_number=org.corporate_number, email="rep@example.jp",
                 acr="gbiz:mfa", amr=["pwd", "otp"])
    assert gbiz_sign_in(client, gbiz, "prime-1").status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    assert client.get("/account").status_code == 302  # signed out
    assert gbiz_sign_in(client, gbiz, "prime-1").status_code == 302
    rows, links = users(app)
    assert rows == [("rep@example.jp", "org_admin", org.id, True)] and len(links) == 1
    from portal import db
    from portal.auth.models import GbizLink

    with app.app_context():
        link = db.session().execute(sa.select(GbizLink)).scalar_one()
        assert (link.last_acr, link.last_amr) == ("gbiz:mfa", "pwd otp")


def test_roles_for_account_types_are_settings(app, client, factory, gbiz):
    app.config["SETTINGS"].oidc_prime_role = ""  # this portal refuses Prime accounts
    org = factory.org(facility=True)
    gbiz.account("prime-2", account_type="prime", corporate_number=org.corporate_number, email="p2@example.jp")
    resp = gbiz_sign_in(client, gbiz, "prime-2")
    assert resp.status_code == 403
    assert users(app) == ([], [])
    assert last_failure(app).reason == "account_type_refused"


# ---------------------------------------------------------------- refused identities

def test_entry_account_is_refused(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("entry-1", account_type="entry", corporate_number=org.corporate_number, email="e1@example.jp")
    resp = gbiz_sign_in(client, gbiz, "entry-1")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 403
    assert ja("A gBizID Entry account cannot be used here, because its holder's identity has not been verified. "
              "Sign in with a gBizID Prime or Member account.") in page
    assert users(app) == ([], [])
    event = last_failure(app)
    assert event.reason == "account_type_refused" and '"account_type":"entry"' in event.details
    assert client.get("/account").status_code == 302  # not signed in


def test_unregistered_corporate_number_is_refused_with_what_to_do(app, client, factory, gbiz):
    factory.org(facility=True)
    gbiz.account("stranger", account_type="prime", corporate_number="1180301018771", email="s@example.jp")
    resp = gbiz_sign_in(client, gbiz, "stranger")
    assert resp.status_code == 403
    assert ja("Your company (corporate number %(number)s) is not registered with this portal. Ask the portal help "
              "desk at METI to register it, then sign in with gBizID again.", number="1180301018771") \
        in resp.get_data(as_text=True)
    assert users(app) == ([], [])
    assert last_failure(app).reason == "unregistered_corporate_number"


def test_refusal_page_in_english(app, client, factory, gbiz):
    gbiz.account("stranger-en", account_type="member", corporate_number="7000012050002", email="en@example.jp")
    page = client.get("/auth/login").get_data(as_text=True)
    client.post("/language", data={"lang": "en", "next": "/auth/login", "csrf_token": csrf_of(page)})
    callback = gbiz.sign_in(start(client), "stranger-en")
    resp = client.get(path_of(callback))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "Ask the portal help desk at METI to register it" in page, page[:1500]
    assert "Sign-in with gBizID was not completed" in page and 'lang="en"' in page
    assert "code=" not in page and "state=" not in page  # the language switch leads to the sign-in page


def test_government_organisation_never_signs_in_through_gbiz(app, client, factory, gbiz):
    gov = factory.org(government=True)
    gbiz.account("gov-1", account_type="prime", corporate_number=gov.corporate_number, email="g@example.jp")
    assert gbiz_sign_in(client, gbiz, "gov-1").status_code == 403
    assert users(app) == ([], [])


def test_government_account_with_same_email_is_refused(app, client, factory, gbiz):
    reviewer = factory.user("reviewer")
    org = factory.org(facility=True)
    gbiz.account("gov-2", account_type="prime", corporate_number=org.corporate_number, email=reviewer.email)
    assert gbiz_sign_in(client, gbiz, "gov-2").status_code == 403
    assert last_failure(app).reason == "government_account"
    assert users(app)[1] == []


# ---------------------------------------------------------------- linking an existing account

def test_existing_password_account_links_only_after_its_password(app, client, factory, gbiz):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org, totp=True)
    number = org.corporate_number
    gbiz.account("member-link", account_type="member", corporate_number=number, email=filer.email.upper())
    resp = gbiz_sign_in(client, gbiz, "member-link")
    assert resp.status_code == 302 and resp.location.endswith("/auth/login")
    assert users(app)[1] == []  # not linked by the e-mail claim alone
    assert client.get("/account").status_code == 302  # and not signed in
    # A wrong password links nothing.
    page = client.get("/auth/login")
    client.post("/auth/login", data={"email": filer.email, "password": "wrong password 1234",
                                     "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert users(app)[1] == []
    page = client.get("/auth/login")
    resp = client.post("/auth/login", data={"email": filer.email, "password": PASSWORD,
                                            "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.location.endswith("/auth/2fa")
    page = client.get("/auth/2fa")
    resp = client.post("/auth/2fa", data={"code": current_code(filer.totp_secret),
                                          "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302
    rows, links = users(app)
    assert [(uid, sub) for uid, sub, _, _ in links] == [(filer.id, "member-link")]
    assert audit_events(app, "auth.gbiz.link")[-1].outcome == "success"
    # From now on GビズID signs this account in, with its role unchanged.
    client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    assert gbiz_sign_in(client, gbiz, "member-link").status_code == 302
    assert client.get("/account").status_code == 200
    assert users(app)[0] == [(filer.email, "filer", filer.organisation_id, True)]


def test_existing_account_of_another_company_is_not_linked(app, client, factory, gbiz):
    filer = factory.user("filer")
    other = factory.org(facility=True)
    gbiz.account("member-x", account_type="member", corporate_number=other.corporate_number, email=filer.email)
    assert gbiz_sign_in(client, gbiz, "member-x").location.endswith("/auth/login")
    page = client.get("/auth/login")
    client.post("/auth/login", data={"email": filer.email, "password": PASSWORD,
                                     "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert users(app)[1] == []
    assert audit_events(app, "auth.gbiz.link")[-1].reason == "corporate_number_differs"


# ---------------------------------------------------------------- lifecycle

def test_disabled_account_cannot_sign_in_through_the_provider(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-d", account_type="member", corporate_number=org.corporate_number, email="d@example.jp")
    assert gbiz_sign_in(client, gbiz, "member-d").status_code == 302
    from portal import db
    from portal.auth.models import User

    with app.app_context():
        user = db.session().execute(sa.select(User)).scalar_one()
        user.active = False
        db.session().commit()
    assert client.get("/account").status_code == 302  # signed out on the next request
    other = app.test_client()
    resp = gbiz_sign_in(other, gbiz, "member-d")
    assert resp.status_code == 403 and last_failure(app).reason == "disabled"
    assert other.get("/account").status_code == 302


def test_changed_corporate_number_is_refused_and_audited(app, client, factory, gbiz):
    org = factory.org(facility=True)
    moved = factory.org(facility=True)
    gbiz.account("member-c", account_type="member", corporate_number=org.corporate_number, email="c@example.jp")
    assert gbiz_sign_in(client, gbiz, "member-c").status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    gbiz.account("member-c", account_type="member", corporate_number=moved.corporate_number, email="c@example.jp")
    resp = gbiz_sign_in(client, gbiz, "member-c")
    assert resp.status_code == 403
    event = last_failure(app)
    assert event.reason == "corporate_number_changed" and moved.corporate_number in event.details
    rows, links = users(app)
    assert rows == [("c@example.jp", "filer", org.id, True)] and links[0][2] == org.corporate_number
    assert client.get("/account").status_code == 302


def test_sign_out_ends_the_portal_session_and_the_providers(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-o", account_type="member", corporate_number=org.corporate_number, email="o@example.jp")
    person = requests.Session()
    assert gbiz_sign_in(client, gbiz, "member-o", person=person).status_code == 302
    resp = client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    assert resp.status_code == 302 and resp.location.startswith(gbiz.issuer + "/session/end")
    assert "id_token_hint=" in resp.location
    assert client.get("/account").status_code == 302
    # The provider asks the person to confirm, then sends them back to the portal's sign-in page.
    page = person.get(resp.location, timeout=10)
    form = page.text
    import re

    action = re.search(r'<form[^>]*action="([^"]+)"', form).group(1)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', form).group(1)
    done = person.post(requests.compat.urljoin(gbiz.issuer, action), data={"xsrf": xsrf, "logout": "yes"},
                       allow_redirects=False, timeout=10)
    assert done.is_redirect and done.headers["Location"].startswith(app.config["SETTINGS"].base_url + "/auth/login")
    # The provider's session is gone: the next authorization asks for the sign-in page again.
    again = person.get(start(client), allow_redirects=True, timeout=10)
    assert 'name="login"' in again.text


def test_off_when_unset(app, client):
    unconfigure(app)
    assert client.get("/auth/gbiz").status_code == 404
    assert client.get("/auth/gbiz/callback?code=x&state=y").status_code == 404
    assert "/auth/gbiz" not in client.get("/auth/login").get_data(as_text=True)


# ---------------------------------------------------------------- bad answers

BAD_TOKENS = [
    ("forged", "bad_signature"),
    ("expired", "expired"),
    ("wrong_aud", "wrong_audience"),
    ("nonce", "nonce_mismatch"),
    ("alg_none", "bad_algorithm"),
    ("unknown_kid", "unknown_key"),
]


@pytest.mark.parametrize("mode,reason", BAD_TOKENS)
def test_bad_id_token_is_refused(app, client, factory, gbiz, mode, reason):
    org = factory.org(facility=True)
    gbiz.account(f"member-{mode}", account_type="member", corporate_number=org.corporate_number,
                 email=f"{mode.replace('_', '')}@example.jp")
    resp = gbiz_sign_in(client, gbiz, f"member-{mode}", tamper=mode)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400, page[:800]
    assert ja("gBizID's answer could not be verified, so you have not been signed in. Start again from the "
              "sign-in page; if this happens again, contact the portal help desk.") in page
    assert last_failure(app).reason == reason
    assert users(app) == ([], [])
    assert client.get("/account").status_code == 302


def test_rotated_key_is_fetched_and_accepted(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-r", account_type="member", corporate_number=org.corporate_number, email="r@example.jp")
    assert gbiz_sign_in(client, gbiz, "member-r").status_code == 302  # the JWKS is cached now
    client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    resp = gbiz_sign_in(client, gbiz, "member-r", tamper="rotated")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:800]
    assert client.get("/account").status_code == 200


def test_clock_skew_within_leeway_is_accepted(app, client, factory, gbiz):
    """An ID token the provider dated two minutes into the future passes with the default leeway
    set to three minutes, and is refused with none."""
    org = factory.org(facility=True)
    gbiz.account("member-s", account_type="member", corporate_number=org.corporate_number, email="sk@example.jp")
    app.config["SETTINGS"].oidc_leeway_seconds = 0
    resp = gbiz_sign_in(client, gbiz, "member-s", tamper="future=120")
    assert resp.status_code == 400
    app.config["SETTINGS"].oidc_leeway_seconds = 180
    try:
        assert gbiz_sign_in(client, gbiz, "member-s", tamper="future=120").status_code == 302
    finally:
        app.config["SETTINGS"].oidc_leeway_seconds = 60


def test_replayed_code_is_refused(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-p", account_type="member", corporate_number=org.corporate_number, email="p@example.jp")
    callback = gbiz.sign_in(start(client), "member-p")
    assert client.get(path_of(callback)).status_code == 302
    code = dict(p.split("=", 1) for p in callback.split("?", 1)[1].split("&"))["code"]
    # An attacker replays the code inside a fresh flow of their own (a state the portal issued).
    attacker = app.test_client()
    fresh = start(attacker)
    state = dict(p.split("=", 1) for p in fresh.split("?", 1)[1].split("&"))["state"]
    resp = attacker.get(f"/auth/gbiz/callback?code={code}&state={state}")
    assert resp.status_code == 400 and last_failure(app).reason == "code_refused"
    assert attacker.get("/account").status_code == 302
    assert len(users(app)[0]) == 1


def test_mismatched_state_is_refused(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-st", account_type="member", corporate_number=org.corporate_number, email="st@example.jp")
    callback = gbiz.sign_in(start(client), "member-st")
    # The callback arrives in another browser (login CSRF): its session never started this flow.
    other = app.test_client()
    resp = other.get(path_of(callback))
    assert resp.status_code == 400 and last_failure(app).reason == "state_mismatch"
    resp = client.get(path_of(callback).replace("state=", "state=x"))
    assert resp.status_code == 400 and last_failure(app).reason == "state_mismatch"
    assert users(app) == ([], [])


def test_answer_from_another_issuer_is_refused(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-i", account_type="member", corporate_number=org.corporate_number, email="i@example.jp")
    callback = gbiz.sign_in(start(client), "member-i")
    resp = client.get(path_of(callback).replace("iss=", "iss=https%3A%2F%2Fevil.example%2F&x="))
    assert resp.status_code == 400 and last_failure(app).reason == "wrong_issuer"
    assert users(app) == ([], [])


def test_provider_error_and_unreachable_provider_are_plain_pages(app, client, gbiz):
    start(client)
    resp = client.get("/auth/gbiz/callback?error=access_denied&state=whatever")
    assert resp.status_code == 400 and last_failure(app).reason == "cancelled"
    app.config["SETTINGS"].oidc_issuer = "http://127.0.0.1:9"  # nothing listens on the discard port
    resp = client.get("/auth/gbiz")
    assert resp.status_code == 503 and last_failure(app).reason == "provider_unavailable"


def test_config_requires_all_three_settings():
    from portal.config import ConfigError, Settings

    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_OIDC_ISSUER": "https://gbiz.example"})
    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_OIDC_ISSUER": "http://gbiz.example", "PORTAL_OIDC_CLIENT_ID": "a",
                           "PORTAL_OIDC_CLIENT_SECRET": "b"})
    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_OIDC_MEMBER_ROLE": "reviewer"})
    s = Settings.from_env({"PORTAL_OIDC_ISSUER": "https://gbiz.example", "PORTAL_OIDC_CLIENT_ID": "a",
                           "PORTAL_OIDC_CLIENT_SECRET": "b"})
    assert s.oidc_enabled and not Settings.from_env({}).oidc_enabled


def test_unusable_claims_are_refused(app, client, factory, gbiz):
    """A 法人番号 whose check digit is wrong, or a missing account type: the token verifies, but
    the portal cannot tell who the person is."""
    org = factory.org(facility=True)
    gbiz.account("member-bad", account_type="member", corporate_number=org.corporate_number, email="b@example.jp")
    resp = gbiz_sign_in(client, gbiz, "member-bad", tamper="corporate_number=1234567890123")
    assert resp.status_code == 400 and last_failure(app).reason == "claim_corporate_number"
    gbiz.account("member-bad", account_type="director", corporate_number=org.corporate_number, email="b@example.jp")
    resp = gbiz_sign_in(client, gbiz, "member-bad")
    assert resp.status_code == 400 and last_failure(app).reason == "claim_account_type"
    assert users(app) == ([], [])


def test_linked_account_whose_gbiz_became_entry_is_refused(app, client, factory, gbiz):
    org = factory.org(facility=True)
    gbiz.account("member-e", account_type="member", corporate_number=org.corporate_number, email="me@example.jp")
    assert gbiz_sign_in(client, gbiz, "member-e").status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))})
    gbiz.account("member-e", account_type="entry", corporate_number=org.corporate_number, email="me@example.jp")
    resp = gbiz_sign_in(client, gbiz, "member-e")
    assert resp.status_code == 403 and last_failure(app).reason == "account_type_refused"
    assert users(app)[1][0][3] == "member"  # the link is unchanged
    assert client.get("/account").status_code == 302


@pytest.mark.postgres_only
def test_two_first_sign_ins_at_once_give_one_account_and_no_error(app, factory, monkeypatch):
    """The same person's first sign-in twice at once (two tabs): the second request's insert
    collides with the account the first one committed meanwhile, and it signs in to that
    account instead of failing with an error page. (SQLite serialises its writers, so the race
    exists on PostgreSQL only.)"""
    from portal import db
    from portal.auth import gbiz
    from portal.auth.gbiz_claims import GbizIdentity
    from portal.auth.models import GbizLink, User

    s = app.config["SETTINGS"]
    monkeypatch.setattr(s, "oidc_issuer", "https://gbiz.example", raising=False)
    org = factory.org("株式会社同時", facility=True)
    who = GbizIdentity(subject="same-person", account_type="member", corporate_number=org.corporate_number,
                       name="同時 太郎", email="doji@example.jp", acr=None, amr=None)

    def the_other_request_commits_first(session, email):
        """This request's look-up finds no account (None), and the other request commits one."""
        with db.engine().connect() as other:  # the first tab's request, committed in between
            uid = other.execute(sa.insert(User).values(email="doji@example.jp", name="同時 太郎", role="filer",
                                                       organisation_id=org.id, password_hash=None, locale="ja")
                                .returning(User.id)).scalar_one()
            other.execute(sa.insert(GbizLink).values(user_id=uid, issuer="https://gbiz.example",
                                                     subject="same-person", corporate_number=org.corporate_number,
                                                     account_type="member"))
            other.commit()

    with app.test_request_context():
        session = db.session()
        monkeypatch.setattr(gbiz, "find_user", the_other_request_commits_first)
        outcome = gbiz.sign_in(session, s, who, "203.0.113.9")
        session.commit()
        assert outcome.kind == "signed_in" and outcome.user.email == "doji@example.jp"
        users = session.execute(sa.select(User).where(User.email == "doji@example.jp")).scalars().all()
        assert len(users) == 1 and outcome.user.id == users[0].id
