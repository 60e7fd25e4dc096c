"""The test OpenID provider (tests/oidc/provider.mjs: panva's oidc-provider under Node), started
once per test process like tests/live_server.py starts gunicorn, and the person's side of a
GビズID sign-in: the provider's own sign-in page, driven over HTTP.

Locally the tests that need it are skipped without Node or ``npm ci``; CI
(PORTAL_REQUIRE_BROWSER, set by .ci/run) fails instead."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"


class Provider:
    def __init__(self, log_dir: Path):
        node = shutil.which("node")
        if node is None or not (ROOT / "node_modules" / "oidc-provider").is_dir():
            raise FileNotFoundError("node or node_modules/oidc-provider (run `npm ci`)")
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"oidc-provider-{self.port}.log"
        self.proc = subprocess.Popen([node, str(SCRIPT), str(self.port)], cwd=ROOT, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OpenID provider exited:\n{self.log.read_text(errors='replace')}")
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the OpenID provider did not answer:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def register(self, base_url: str) -> tuple[str, str]:
        """A client of its own for a portal at ``base_url`` (open dynamic registration)."""
        base = base_url.rstrip("/")
        resp = requests.post(f"{self.issuer}/reg", json={
            "redirect_uris": [f"{base}/auth/gbiz/callback"],
            "post_logout_redirect_uris": [f"{base}/auth/login"],
            "response_types": ["code"], "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic", "id_token_signed_response_alg": "RS256",
        }, timeout=10)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        return body["client_id"], body["client_secret"]

    def account(self, login: str, *, account_type: str = "member", corporate_number: str, email: str,
                name: str = "山田 太郎", password: str = "provider-side password", **extra) -> str:
        """A GビズID account with the claims a connection carries; its login is its subject (the
        provider's account id)."""
        claims = {"sub": login, "account_type": account_type, "corporate_number": corporate_number,
                  "email": email, "email_verified": True, "name": name, "password": password, **extra}
        resp = requests.put(f"{self.issuer}/__test/accounts/{urllib.parse.quote(login)}", data=json.dumps(claims),
                            timeout=10)
        assert resp.status_code == 204, resp.text
        return login

    def tamper(self, mode: str | None) -> None:
        """The next token response's ID token is rewritten (see provider.mjs)."""
        resp = requests.post(f"{self.issuer}/__test/tamper", data=json.dumps({"mode": mode}), timeout=10)
        assert resp.status_code == 204, resp.text

    def sign_in(self, authorize_url: str, login: str, person: requests.Session | None = None,
                password: str = "provider-side password") -> str:
        """The person on the provider's own sign-in page: from the portal's redirect to the
        provider until the provider sends the browser back; returns that callback URL."""
        person = person or requests.Session()
        url = authorize_url
        for _ in range(12):
            resp = person.get(url, allow_redirects=False, timeout=10)
            if resp.is_redirect:
                url = urllib.parse.urljoin(url, resp.headers["Location"])
                if not url.startswith(self.issuer):
                    return url
                continue
            assert resp.status_code == 200, resp.text[:500]
            form = re.search(r'<form[^>]*action="([^"]+)"', resp.text)
            assert form, resp.text[:500]
            resp = person.post(urllib.parse.urljoin(url, form.group(1)),
                               data={"prompt": "login", "login": login, "password": password},
                               allow_redirects=False, timeout=10)
            assert resp.is_redirect, resp.text[:500]
            url = urllib.parse.urljoin(url, resp.headers["Location"])
            if not url.startswith(self.issuer):
                return url
        raise AssertionError("the provider never sent the browser back")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """One provider per test process, stopped when the session ends."""
    try:
        provider = Provider(tmp_path_factory.mktemp("oidc"))
    except FileNotFoundError as exc:
        if os.environ.get("PORTAL_REQUIRE_BROWSER"):
            pytest.fail(f"the test OpenID provider is required in CI: {exc}")
        pytest.skip(f"no test OpenID provider: {exc}")
    yield provider
    provider.stop()


def configure(app, provider: Provider, **overrides) -> None:
    """Point the (session-wide) test app at the provider with a client of its own."""
    s = app.config["SETTINGS"]
    client_id, secret = provider.register(s.base_url)
    s.oidc_issuer, s.oidc_client_id, s.oidc_client_secret = provider.issuer, client_id, secret
    for k, v in overrides.items():
        setattr(s, k, v)


def unconfigure(app) -> None:
    s = app.config["SETTINGS"]
    s.oidc_issuer = s.oidc_client_id = s.oidc_client_secret = None
    s.oidc_prime_role, s.oidc_member_role, s.oidc_entry_role = "org_admin", "filer", ""
    s.oidc_logout = True
    app.extensions.pop("gbiz_oidc", None)


def path_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
