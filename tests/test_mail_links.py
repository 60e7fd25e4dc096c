"""Links in mail and who may read them (issue 13 items 5 and 6): every absolute link is built on
PORTAL_BASE_URL whatever Host the request names, and the outbox's readers (the admin's page,
`portal mail list`) see that an invitation was mailed and to whom, never its live token."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal import db
from portal.config import ConfigError, Settings
from portal.mail.models import OutboxMessage
from tests.conftest import csrf_of, sign_in

TOKEN = re.compile(r"/invitation/([A-Za-z0-9_\-]{32,})")
EVIL = "evil.example"


def mail_to(app, email: str) -> OutboxMessage:
    """The stored mail, read from the database as only its recipient's mailbox would hold it."""
    with app.app_context():
        [msg] = db.session().execute(sa.select(OutboxMessage).where(OutboxMessage.to_addr == email)).scalars()
        db.session().expunge_all()
        return msg


def token_of(app, email: str) -> str:
    m = TOKEN.search(mail_to(app, email).body)
    assert m, "no invitation link in the mail"
    return m.group(1)


def signed_in_on(client, host: str) -> None:
    """The test client keeps cookies per host: carry the signed-in ones over to ``host``."""
    for c in list(client._cookies.values()):
        client.set_cookie(c.key, c.value, domain=host, path=c.path)


def invite_as_org_admin(app, factory, email: str, **request):
    """An org_admin invites ``email``; ``request`` (headers, base_url) goes on every request."""
    org = factory.org(name="株式会社サンプル電子", facility=True)
    client = app.test_client()
    sign_in(client, factory.user("org_admin", org=org))
    signed_in_on(client, EVIL)
    page = client.get("/organisation/members", **request).get_data(as_text=True)
    resp = client.post("/organisation/members/invite", **request,
                       data={"name": "鈴木 花子", "email": email, "role": "filer", "csrf_token": csrf_of(page)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return org


@pytest.fixture
def base_url(app, monkeypatch):
    """A public address unlike the test client's, with a path prefix."""
    url = "https://ttr.example.go.jp/portal"
    monkeypatch.setattr(app.config["SETTINGS"], "base_url", url)
    return url


@pytest.mark.parametrize("request_kw", [
    {"headers": {"Host": EVIL}},
    {"base_url": f"https://{EVIL}"},
    {"headers": {"X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL}"}},
], ids=["host-header", "request-url", "forwarded-host"])
def test_invitation_link_is_on_the_base_url_whatever_the_host(app, factory, base_url, request_kw):
    invite_as_org_admin(app, factory, "hanako.suzuki@example.co.jp", **request_kw)
    body = mail_to(app, "hanako.suzuki@example.co.jp").body
    assert EVIL not in body
    token = token_of(app, "hanako.suzuki@example.co.jp")
    assert f"{base_url}/invitation/{token}\n" in body
    # The path after the base URL is the portal's own route.
    assert app.test_client().get(f"/invitation/{token}").status_code == 200


def test_admin_invitation_link_is_on_the_base_url(app, factory, base_url):
    admin = factory.user("admin", level="restricted", compartments=())
    client = app.test_client()
    sign_in(client, admin)
    signed_in_on(client, EVIL)
    page = client.get("/admin/users", headers={"Host": EVIL}).get_data(as_text=True)
    resp = client.post("/admin/users/invite", headers={"Host": EVIL},
                       data={"organisation_id": str(admin.organisation_id), "name": "山田 太郎",
                             "email": "taro.yamada@meti.go.jp", "role": "reviewer", "csrf_token": csrf_of(page)})
    assert resp.status_code == 302
    body = mail_to(app, "taro.yamada@meti.go.jp").body
    assert EVIL not in body and f"{base_url}/invitation/{token_of(app, 'taro.yamada@meti.go.jp')}" in body


@pytest.mark.parametrize("value", ["", "127.0.0.1:5000", "javascript:alert(1)", "ftp://portal.example",
                                   "https://", "https://portal.example/?next=x", "https://portal.example/#x"])
def test_a_base_url_that_cannot_start_a_link_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="PORTAL_BASE_URL"):
        Settings.from_env({"PORTAL_BASE_URL": value}, instance_path=tmp_path)


def test_make_run_sets_the_base_url_from_the_port():
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(["make", "-n", "-p", "run", "PORT=8123"], cwd=root, env=env, capture_output=True, text=True)
    assert "run: PORTAL_BASE_URL := http://127.0.0.1:8123" in out.stdout
    out = subprocess.run(["make", "-n", "-p", "run", "PORT=8123"], cwd=root, capture_output=True, text=True,
                         env={**env, "PORTAL_BASE_URL": "https://ttr.example.go.jp"})
    assert "run: PORTAL_BASE_URL := https://ttr.example.go.jp" in out.stdout


# ---------------------------------------------------------------- the outbox hides live links


@pytest.fixture
def admin(app, factory):
    client = app.test_client()
    sign_in(client, factory.user("admin", level="restricted", compartments=()))
    return client


def test_the_admin_never_sees_a_pending_invitation_token(app, factory, admin):
    invite_as_org_admin(app, factory, "hanako.suzuki@example.co.jp")
    token = token_of(app, "hanako.suzuki@example.co.jp")
    resp = admin.get("/admin/outbox")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    # That the mail was written, and to whom ...
    assert "hanako.suzuki@example.co.jp" in html and "/invitation/••••••••" in html
    # ... but not the link: the token (nor any long part of it) appears nowhere on the page.
    assert token not in html and token[:16] not in html and token[-16:] not in html
    # The invitation still works for its recipient.
    assert app.test_client().get(f"/invitation/{token}").status_code == 200


def test_the_switch_shows_links_in_development(app, factory, admin, monkeypatch):
    invite_as_org_admin(app, factory, "hanako.suzuki@example.co.jp")
    token = token_of(app, "hanako.suzuki@example.co.jp")
    settings = app.config["SETTINGS"]
    monkeypatch.setattr(settings, "show_mail_links", True)
    monkeypatch.setattr(settings, "env", "development")
    assert f"/invitation/{token}" in admin.get("/admin/outbox").get_data(as_text=True)
    # The switch is never honoured in production, even if it got past start-up.
    monkeypatch.setattr(settings, "env", "production")
    assert token not in admin.get("/admin/outbox").get_data(as_text=True)


def test_the_switch_is_off_by_default_and_refused_in_production(tmp_path):
    assert Settings.from_env({}, instance_path=tmp_path).mail_links_shown is False
    with pytest.raises(ConfigError, match="PORTAL_SHOW_MAIL_LINKS"):
        Settings.from_env({"PORTAL_SHOW_MAIL_LINKS": "1"}, instance_path=tmp_path)
    with pytest.raises(ConfigError, match="PORTAL_SHOW_MAIL_LINKS"):
        Settings.from_env({"PORTAL_SHOW_MAIL_LINKS": "1", "PORTAL_ENV": "production"}, instance_path=tmp_path)
    dev = Settings.from_env({"PORTAL_SHOW_MAIL_LINKS": "1", "PORTAL_ENV": "development"}, instance_path=tmp_path)
    assert dev.mail_links_shown is True


def test_mail_list_hides_invitation_tokens(app, factory, monkeypatch):
    from click.testing import CliRunner

    from portal.cli import mail_list

    invite_as_org_admin(app, factory, "hanako.suzuki@example.co.jp")
    token = token_of(app, "hanako.suzuki@example.co.jp")
    with app.app_context():
        out = CliRunner().invoke(mail_list, ["--limit", "5"])
    assert out.exit_code == 0, out.output
    assert "to hanako.suzuki@example.co.jp" in out.output and "/invitation/••••••••" in out.output
    assert token not in out.output
    settings = app.config["SETTINGS"]
    monkeypatch.setattr(settings, "show_mail_links", True)
    monkeypatch.setattr(settings, "env", "development")
    with app.app_context():
        out = CliRunner().invoke(mail_list, ["--limit", "5"])
    assert f"/invitation/{token}" in out.output


def test_other_mail_is_shown_as_written(app, admin):
    from portal.mail import outbox

    body = "新しいメッセージがあります。\nhttps://ttr.example.go.jp/reports/12\n"
    with app.app_context():
        outbox.queue(db.session(), "someone@example.co.jp", "通知", body)
        db.session().commit()
    html = admin.get("/admin/outbox").get_data(as_text=True)
    assert "https://ttr.example.go.jp/reports/12" in html


@pytest.mark.parametrize("text, shown", [
    ("https://x/invitation/abcDEF_-123\n", "https://x/invitation/••••••••\n"),
    ("a /invitation/t1 b /invitation/t2", "a /invitation/•••••••• b /invitation/••••••••"),
    ("リンク：http://x/invitation/tok。以上", "リンク：http://x/invitation/••••••••"),
    ("nothing under /invitation/ here", "nothing under /invitation/ here"),
])
def test_redact(text, shown):
    from portal.mail.outbox import redact

    assert redact(text) == shown
