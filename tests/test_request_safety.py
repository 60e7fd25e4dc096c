"""Headers, cookies, languages, error pages and the health check."""
from __future__ import annotations

import pytest

from portal.config import ConfigError, Settings
from tests.conftest import csrf_of, ja, sign_in


def test_security_headers_on_every_response(client):
    for path in ("/auth/login", "/does-not-exist", "/healthz"):
        h = client.get(path).headers
        csp = h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in h


def test_signed_in_pages_are_not_stored_and_cookies_are_safe(app, client, factory):
    sign_in(client, factory.user("filer"))
    resp = client.get("/account")
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = client.get_cookie("ttr_session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_https_adds_hsts_and_secure_cookies(app, factory):
    client = app.test_client()
    resp = client.get("/auth/login", base_url="https://portal.example")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_templates_carry_no_inline_script_or_style(client):
    body = client.get("/auth/login").get_data(as_text=True)
    assert "<script>" not in body and "style=" not in body and "<style" not in body


def test_japanese_by_default_and_english_by_choice_remembered_per_user(app, client, factory):
    assert '<html lang="ja">' in client.get("/auth/login").get_data(as_text=True)
    user = factory.user("filer")
    sign_in(client, user)
    page = client.get("/account").get_data(as_text=True)
    client.post("/language", data={"lang": "en", "next": "/account", "csrf_token": csrf_of(page)})
    assert '<html lang="en">' in client.get("/account").get_data(as_text=True)
    other = app.test_client()
    sign_in(other, user)
    assert '<html lang="en">' in other.get("/account").get_data(as_text=True)


def test_unknown_language_gets_a_message_and_changes_nothing(client):
    page = client.get("/auth/login").get_data(as_text=True)
    resp = client.post("/language", data={"lang": "xx", "next": "/auth/login", "csrf_token": csrf_of(page)},
                       follow_redirects=True)
    body = resp.get_data(as_text=True)
    assert '<html lang="ja">' in body
    assert ja("That language is not available. Choose Japanese or English.") in body


@pytest.mark.parametrize("lang, marker", [("ja", 'lang="ja"'), ("en", 'lang="en"')])
def test_error_pages_in_both_languages(client, lang, marker):
    page = client.get("/auth/login").get_data(as_text=True)
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": csrf_of(page)})
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    body = resp.get_data(as_text=True)
    assert marker in body
    assert (ja("Page not found") if lang == "ja" else "Page not found") in body


def test_an_unexpected_error_is_a_500_page_not_a_traceback(app, instance_dir, database_url):
    from portal import create_app
    from portal.core.guard import public
    from tests.conftest import make_settings

    fresh = create_app(make_settings(instance_dir, database_url))

    @public
    def boom():
        raise RuntimeError("secret detail")

    fresh.add_url_rule("/__boom", "boom", boom)
    resp = fresh.test_client().get("/__boom")
    assert resp.status_code == 500
    body = resp.get_data(as_text=True)
    assert "secret detail" not in body and "Traceback" not in body
    assert ja("Something went wrong") in body


def test_healthz_reports_database_and_keyring(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json
    scanner = body.pop("scanner")
    assert body == {"database": "ok", "keyring": "ok", "status": "ok"}
    assert scanner["state"] == "ok" and scanner["version"].startswith("ClamAV ")
    assert 0 <= scanner["signatures_age_hours"] < 48


def test_production_refuses_to_start_without_a_secret(tmp_path):
    from portal import create_app

    with pytest.raises(ConfigError):
        create_app(Settings.from_env({}, env="production", instance_path=tmp_path))
    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_SECRET_KEY": "short"}, instance_path=tmp_path)
    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_SESSION_IDLE_MINUTES": "soon"}, instance_path=tmp_path)


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    from portal.config import setting_names

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [n for n in setting_names() if n not in readme]
    assert not missing, f"README.md does not document {missing}"
