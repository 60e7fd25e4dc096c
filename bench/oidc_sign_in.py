"""Sign-in round trip through GビズID (OpenID Connect) against a password sign-in with TOTP, in
the same run (issue 18).

Serves the portal with gunicorn (1 worker, production settings, Argon2id at its production
cost, SQLite in a temporary instance) and the test OpenID provider (panva's oidc-provider,
tests/oidc/provider.mjs under Node), both on loopback. Seeds one company with ``--rounds``
filers who sign in with password and TOTP and ``--rounds`` GビズID Member accounts already
linked to filers of the same company, then alternates, one person after another:

    password: GET /auth/login → POST e-mail and password → GET /auth/2fa → POST the TOTP code
              → GET the home page
    GビズID:  GET /auth/gbiz → the provider's /auth → its sign-in page → POST login and password
              → the provider's redirects → GET /auth/gbiz/callback (code exchanged, ID token
              verified, account found) → GET the home page

each timed from the first request to the home page's last byte, over plain HTTP with a fresh
cookie jar per person (a person signs in once per round: a TOTP code is accepted once). The
first round of each is a warm-up and not counted (the portal fetches the provider's discovery
document and JWKS once).

    .venv/bin/python bench/oidc_sign_in.py [--rounds 20]

Needs `npm ci` (node_modules/oidc-provider). One JSON line is appended to
bench/results/oidc_sign_in.json; a summary is printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._common import write_result
from tests.live_server import Server, free_port, portal_cli, server_env
from tests.oidc.harness import Provider

PASSWORD = "correct horse battery staple 42"


def csrf(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def seed(env: dict, rounds: int, issuer: str, provider: Provider) -> tuple[list, list]:
    """A company, ``rounds`` password+TOTP filers and ``rounds`` linked GビズID filers."""
    import os

    from portal import create_app, db
    from portal.auth.models import GbizLink, User
    from portal.auth.passwords import Argon2Params, hash_password
    from portal.auth import totp
    from portal.config import Settings
    from portal.db import utcnow
    from portal.orgs.models import Organisation

    saved = {k: v for k, v in os.environ.items() if k.startswith("PORTAL_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("PORTAL_")})
    try:
        settings = Settings.from_env()
        app = create_app(settings)
    finally:
        for k in [k for k in os.environ if k.startswith("PORTAL_")]:
            del os.environ[k]
        os.environ.update(saved)
    params = Argon2Params(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_lanes)
    password_hash = hash_password(PASSWORD, params)
    totp_people, gbiz_people = [], []
    with app.app_context():
        s = db.session()
        org = Organisation(name="ベンチ電子株式会社", corporate_number="1180301018771", address="東京都")
        s.add(org)
        s.flush()
        for i in range(rounds):
            secret = totp.new_secret()
            u = User(email=f"totp{i}@bench.example.jp", name=f"Bench TOTP {i}", role="filer", organisation_id=org.id,
                     password_hash=password_hash, totp_secret=secret, totp_enabled_at=utcnow())
            s.add(u)
            totp_people.append((u.email, secret))
            g = User(email=f"gbiz{i}@bench.example.jp", name=f"Bench GビズID {i}", role="filer",
                     organisation_id=org.id, password_hash=None)
            s.add(g)
            s.flush()
            s.add(GbizLink(user_id=g.id, issuer=issuer, subject=f"bench-gbiz-{i}", corporate_number=org.corporate_number,
                           account_type="member"))
            provider.account(f"bench-gbiz-{i}", account_type="member", corporate_number=org.corporate_number,
                             email=g.email, name=g.name, acr="gbiz:mfa", amr=["pwd", "otp"])
            gbiz_people.append(f"bench-gbiz-{i}")
        s.commit()
    return totp_people, gbiz_people


def password_round(base: str, email: str, secret: str) -> float:
    from portal.auth.totp import code_at

    person = requests.Session()
    t0 = time.perf_counter()
    page = person.get(f"{base}/auth/login", timeout=30)
    resp = person.post(f"{base}/auth/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf(page.text)},
                       allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/auth/2fa"), resp.status_code
    page = person.get(f"{base}/auth/2fa", timeout=30)
    resp = person.post(f"{base}/auth/2fa", data={"code": code_at(secret, time.time()), "csrf_token": csrf(page.text)},
                       allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text[:300]
    home = person.get(f"{base}/", timeout=30)
    elapsed = time.perf_counter() - t0
    assert home.status_code == 200 and "Bench TOTP" in home.text
    return elapsed


def gbiz_round(base: str, provider: Provider, login: str) -> float:
    person = requests.Session()  # one jar for the portal and the provider, like a browser
    t0 = time.perf_counter()
    resp = person.get(f"{base}/auth/gbiz", allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text[:300]
    callback = provider.sign_in(resp.headers["Location"], login, person)
    resp = person.get(callback, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text[:300]
    home = person.get(f"{base}/", timeout=30)
    elapsed = time.perf_counter() - t0
    assert home.status_code == 200 and "Bench GビズID" in home.text
    return elapsed


def summary(samples: list[float]) -> dict:
    ms = sorted(x * 1000 for x in samples)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "mean_ms": round(statistics.fmean(ms), 1),
            "p90_ms": round(ms[max(0, int(len(ms) * 0.9) - 1)], 1), "min_ms": round(ms[0], 1),
            "max_ms": round(ms[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-oidc-") as tmp:
        tmp_path = Path(tmp)
        provider = Provider(tmp_path)
        try:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            instance = tmp_path / "instance"
            env = server_env(f"sqlite:///{instance / 'portal.db'}", instance, PORTAL_BASE_URL=base)
            for k in ("PORTAL_ARGON2_MEMORY_KIB", "PORTAL_ARGON2_ITERATIONS", "PORTAL_ARGON2_LANES"):
                env.pop(k)  # the production cost: what a person's password sign-in really costs
            client_id, client_secret = provider.register(base)
            env.update(PORTAL_OIDC_ISSUER=provider.issuer, PORTAL_OIDC_CLIENT_ID=client_id,
                       PORTAL_OIDC_CLIENT_SECRET=client_secret, PORTAL_LOG_LEVEL="WARNING")
            portal_cli(env, "init")
            totp_people, gbiz_people = seed(env, args.rounds + 1, provider.issuer, provider)
            with Server(env, tmp_path, name="portal", args=("--bind", f"127.0.0.1:{port}")):
                pw, gb = [], []
                for i in range(args.rounds + 1):
                    p = password_round(base, *totp_people[i])
                    g = gbiz_round(base, provider, gbiz_people[i])
                    if i:  # the first round warms both paths up
                        pw.append(p)
                        gb.append(g)
        finally:
            provider.stop()
    result = {"rounds": args.rounds, "server": "gunicorn, 1 worker, production settings, SQLite",
              "argon2": "production defaults (19456 KiB, 2 iterations, 1 lane)",
              "password_totp": summary(pw), "gbiz_oidc": summary(gb),
              "ratio_gbiz_to_password_median": round(statistics.median(gb) / statistics.median(pw), 2),
              "total_seconds": round(time.time() - started, 1)}
    path = write_result("oidc_sign_in", result)
    print(f"password + TOTP sign-in: median {result['password_totp']['median_ms']} ms, "
          f"p90 {result['password_totp']['p90_ms']} ms (n={args.rounds})")
    print(f"GビズID (OIDC) sign-in:  median {result['gbiz_oidc']['median_ms']} ms, "
          f"p90 {result['gbiz_oidc']['p90_ms']} ms (n={args.rounds})")
    print(f"ratio GビズID / password (median): {result['ratio_gbiz_to_password_median']}")
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
