"""Sign-in throttling (issue 13 item 4): guessing and spraying are held, and nobody can use
the throttle to lock the owner out. README "Sign-in throttling" gives the rules; the numbers
it quotes are measured here."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, audit_events, csrf_of, current_code, ja, make_settings, sign_in

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.5"
KNOWN_HINT = "A browser you have signed in with before can still sign in."


def _client(app, address: str):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def _login(client, email, password, headers=None):
    page = client.get("/auth/login", headers=headers)
    return client.post("/auth/login", headers=headers, data={
        "email": email, "password": password, "csrf_token": csrf_of(page.get_data(as_text=True))})


def _code(client, code, headers=None):
    page = client.get("/auth/2fa", headers=headers)
    return client.post("/auth/2fa", headers=headers, data={
        "code": code, "csrf_token": csrf_of(page.get_data(as_text=True))})


def _sign_out(client, headers=None):
    home = client.get("/", headers=headers)
    client.post("/auth/logout", headers=headers, data={"csrf_token": csrf_of(home.get_data(as_text=True))})


def _forget_last_code(app, user) -> None:
    """Another 30-second step has begun, as far as the replay check knows (the owner signs in
    several times within one step in these tests)."""
    from portal import db
    from portal.auth.models import User

    with app.app_context():
        db.session().get(User, user.id).totp_last_counter = None
        db.session().commit()


def _wrong_code(user) -> str:
    return f"{(int(current_code(user.totp_secret)) + 500000) % 1000000:06d}"


def _reasons(app, action, reason):
    return [e for e in audit_events(app, action) if e.reason == reason]


@pytest.fixture
def proxied(app, instance_dir, database_url):
    """The portal behind one proxy (PORTAL_BEHIND_PROXY): the address is the last
    X-Forwarded-For entry, so an attacker talking to it directly can rotate it at will."""
    from portal import create_app

    fresh = create_app(make_settings(instance_dir, database_url, behind_proxy=True))
    yield fresh
    fresh.extensions["db_engine"].dispose()


def _xff(address: str) -> dict:
    return {"X-Forwarded-For": address}


# ---------------------------------------------------------------- the owner keeps a way in

def test_attacker_hammering_an_account_from_one_address_while_the_owner_signs_in_from_another(app, factory):
    owner = factory.user("approver")  # an officer: password and TOTP
    s = app.config["SETTINGS"]
    attacker = _client(app, ATTACKER)
    statuses: list[int] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def hammer():
        try:
            for i in range(200):
                statuses.append(_login(attacker, owner.email, f"guess number {i} of many").status_code)
                if i == 10:
                    started.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        started.wait(60)
        signed_in_while_hammered = 0
        while thread.is_alive() or signed_in_while_hammered == 0:
            _forget_last_code(app, owner)
            owner_browser = _client(app, OWNER)  # a browser the owner has never used here
            sign_in(owner_browser, owner)  # asserts the password and the code were taken
            assert owner_browser.get("/account").status_code == 200
            signed_in_while_hammered += 1
    finally:
        thread.join(120)
    assert not errors, errors
    assert len(statuses) == 200
    # The attacker's first few guesses were checked; every other one was held, not checked.
    assert statuses.count(200) == s.login_free_failures
    assert statuses.count(429) == 200 - s.login_free_failures
    assert len(_reasons(app, "auth.signin", "bad_password")) == s.login_free_failures
    assert signed_in_while_hammered >= 1
    # The owner's sign-ins did not give the attacker new guesses: its address is still held,
    # even with the right password.
    assert _login(attacker, owner.email, PASSWORD).status_code == 429
    held = _reasons(app, "auth.signin", "throttled")
    assert held and {e.source_ip for e in held} == {ATTACKER}
    assert {e.details for e in held} == {f'{{"account":"{owner.email}","known_device":false,"rule":"pair"}}'}


def test_guessing_from_rotated_forwarded_addresses_is_held_by_the_account_ceiling(app, proxied, factory):
    owner = factory.user("auditor")
    s = proxied.config["SETTINGS"]
    known = proxied.test_client()
    _forget_last_code(app, owner)
    sign_in(known, owner, follow=False)  # the owner's browser, from the office
    _sign_out(known)
    assert known.get_cookie("ttr_device", path="/auth") is not None

    attacker = proxied.test_client()
    statuses = [_login(attacker, owner.email, f"guess {i} from afar", headers=_xff(f"203.0.113.{i + 1}")).status_code
                for i in range(60)]
    assert statuses.count(200) == s.login_max_failures_account  # 30 checked …
    assert statuses.count(429) == 60 - s.login_max_failures_account  # … and every other one held
    assert len({e.source_ip for e in _reasons(app, "auth.signin", "bad_password")}) == s.login_max_failures_account

    # A browser the owner never used, from yet another address, waits with the right password …
    stranger = _login(proxied.test_client(), owner.email, PASSWORD, headers=_xff("192.0.2.200"))
    assert stranger.status_code == 429
    body = stranger.get_data(as_text=True)
    hours = ja("Too many failed attempts. Try again after %(time)s (in about %(n)d hours).", time="@T@", n=999)
    head, tail = hours.split("@T@")
    assert re.search(re.escape(head) + r"[^（(]+" + re.escape(tail.split("999")[0]) + r"(\d+)", body), body[:3000]
    assert ja(KNOWN_HINT) in body
    assert _reasons(app, "auth.signin", "throttled")[-1].details.find('"rule":"account"') > 0
    # … but the owner's own browser gets in, from an address it has never used either.
    _forget_last_code(app, owner)
    headers = _xff("192.0.2.77")
    resp = _login(known, owner.email, PASSWORD, headers=headers)
    assert resp.status_code == 302 and resp.location.endswith("/auth/2fa")
    assert _code(known, current_code(owner.totp_secret), headers=headers).status_code == 302
    assert known.get("/account", headers=headers).status_code == 200


def test_a_forwarded_address_that_is_no_address_is_counted_not_a_500(app, proxied):
    for value in ("x" * 300, "not-an-ip", "2001:db8::1%eth0"):
        assert _login(proxied.test_client(), "nobody@example.jp", "wrong wrong", headers=_xff(value)).status_code == 200


def test_rotating_forwarded_for_without_the_proxy_setting_is_one_address(app, factory):
    owner = factory.user("filer")
    s = app.config["SETTINGS"]
    attacker = _client(app, ATTACKER)
    statuses = [_login(attacker, owner.email, f"guess {i}", headers=_xff(f"203.0.113.{i + 1}")).status_code
                for i in range(50)]
    assert statuses.count(200) == s.login_free_failures
    assert {e.source_ip for e in _reasons(app, "auth.signin", "bad_password")} == {ATTACKER}


def test_an_ipv6_attacker_rotating_within_its_64_is_one_address(app, factory):
    from portal.auth.throttle import address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.66") == address_key(ATTACKER) == ATTACKER
    assert address_key(None) is None and address_key("not an address") == "not an address"
    owner = factory.user("filer")
    s = app.config["SETTINGS"]
    statuses = [_login(_client(app, f"2001:db8:1:2::{i + 1:x}"), owner.email, f"guess {i}").status_code
                for i in range(20)]
    assert statuses.count(200) == s.login_free_failures
    assert _login(_client(app, "2001:db8:77::1"), owner.email, PASSWORD).status_code == 302


def test_spraying_one_password_over_many_accounts_from_one_address_is_held(app, factory):
    s = app.config["SETTINGS"]
    victims = [factory.user("filer") for _ in range(3)]
    emails = [v.email for v in victims] + [f"someone{i}@example.jp" for i in range(37)]
    sprayer = _client(app, ATTACKER)
    statuses = [_login(sprayer, email, "Summer2026!Summer2026!").status_code for email in emails]
    assert statuses.count(200) == s.login_max_failures_address
    assert statuses.count(429) == len(emails) - s.login_max_failures_address
    # Held for every account from that address, even with the right password …
    assert _login(_client(app, ATTACKER), victims[0].email, PASSWORD).status_code == 429
    # … but not at any other address …
    assert _login(_client(app, OWNER), victims[0].email, PASSWORD).status_code == 302
    # … nor for a browser that has signed in to the account before, even at that address.
    office = _client(app, ATTACKER)
    _seed_known_browser(app, office, victims[1])
    assert _login(office, victims[1].email, PASSWORD).status_code == 302


def _seed_known_browser(app, client, user) -> None:
    """Give ``client`` the cookie a successful sign-in would have left."""
    from portal.auth import devices

    value = devices.remember(None, user.id, app.config["SETTINGS"].require_secret())
    client.set_cookie(devices.COOKIE, value, path=devices.COOKIE_PATH)


def test_parallel_guesses_from_one_address_are_counted_one_after_another(app, factory):
    """Twenty guesses sent at once from one address: still only the free ones are checked
    (PostgreSQL: an advisory lock per account and source; SQLite: serial transactions)."""
    owner = factory.user("filer")
    s = app.config["SETTINGS"]
    clients = [_client(app, ATTACKER) for _ in range(20)]
    tokens = [csrf_of(c.get("/auth/login").get_data(as_text=True)) for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def guess(i):
        barrier.wait(30)
        statuses.append(clients[i].post("/auth/login", data={
            "email": owner.email, "password": f"parallel guess {i}", "csrf_token": tokens[i]}).status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(statuses) == [200] * s.login_free_failures + [429] * (len(clients) - s.login_free_failures)
    assert len(_reasons(app, "auth.signin", "bad_password")) == s.login_free_failures


# ---------------------------------------------------------------- the second factor

def test_code_guessing_is_held_but_the_owner_gets_in_with_the_right_code(app, factory):
    owner = factory.user("reviewer")
    s = app.config["SETTINGS"]
    known = _client(app, ATTACKER)  # the owner's browser shares the attacker's address (one NAT)
    sign_in(known, owner, follow=False)
    _sign_out(known)

    attacker = _client(app, ATTACKER)  # has the password, guesses the code
    assert _login(attacker, owner.email, PASSWORD).location.endswith("/auth/2fa")
    statuses = [_code(attacker, _wrong_code(owner)).status_code for _ in range(40)]
    assert statuses.count(200) == s.login_free_failures
    assert statuses.count(429) == 40 - s.login_free_failures
    assert len(_reasons(app, "auth.2fa", "bad_code")) == s.login_free_failures
    # The right code does not help the attacker now …
    _forget_last_code(app, owner)
    assert _code(attacker, current_code(owner.totp_secret)).status_code == 429
    assert [e.details for e in _reasons(app, "auth.2fa", "throttled")][-1] == '{"known_device":false,"rule":"pair"}'
    # … and nothing has changed for the owner: the known browser at the same address …
    _forget_last_code(app, owner)
    sign_in(known, owner)
    assert known.get("/account").status_code == 200
    # … and a new browser at another address.
    _forget_last_code(app, owner)
    sign_in(_client(app, OWNER), owner)


def test_code_guessing_from_rotated_addresses_stops_at_the_ceiling_and_the_known_browser_gets_in(app, proxied, factory):
    owner = factory.user("security_officer")
    s = proxied.config["SETTINGS"]
    known = proxied.test_client()
    home = _xff("192.0.2.10")
    _login(known, owner.email, PASSWORD, headers=home)
    assert _code(known, current_code(owner.totp_secret), headers=home).status_code == 302
    _sign_out(known, headers=home)

    statuses = []
    for i in range(40):
        headers = _xff(f"198.51.100.{i + 1}")
        attacker = proxied.test_client()
        if _login(attacker, owner.email, PASSWORD, headers=headers).status_code != 302:
            statuses.append("password held")
            continue
        statuses.append(_code(attacker, _wrong_code(owner), headers=headers).status_code)
    assert statuses.count(200) == s.login_max_failures_account
    assert len(_reasons(app, "auth.2fa", "bad_code")) == s.login_max_failures_account
    assert 200 not in statuses[s.login_max_failures_account:]
    _forget_last_code(app, owner)
    resp = _login(known, owner.email, PASSWORD, headers=home)
    assert resp.status_code == 302
    assert _code(known, current_code(owner.totp_secret), headers=home).status_code == 302


# ---------------------------------------------------------------- the rules themselves

def test_delays_double_after_the_free_failures_and_a_success_forgets_only_its_source(app):
    from portal import db
    from portal.auth import services, throttle
    from portal.db import utcnow

    s = app.config["SETTINGS"]
    lim = services.limits(s)
    a, b = throttle.Source("198.51.100.1"), throttle.Source("198.51.100.2")
    t = utcnow()
    with app.app_context():
        ses = db.session()
        for _ in range(s.login_free_failures):
            assert throttle.check(ses, lim, account="x@example.jp", source=a, now=t) is None
            throttle.note_failure(ses, account="x@example.jp", source=a, now=t)
        waits = []
        for _ in range(6):
            hold = throttle.check(ses, lim, account="x@example.jp", source=a, now=t)
            waits.append(hold.until - t)
            assert hold.rule == "pair"
            t = hold.until
            assert throttle.check(ses, lim, account="x@example.jp", source=a, now=t) is None
            throttle.note_failure(ses, account="x@example.jp", source=a, now=t)
        assert waits == [timedelta(seconds=s.login_delay_seconds * 2 ** k) for k in range(6)]
        assert throttle.check(ses, lim, account="x@example.jp", source=b, now=t) is None
        throttle.note_success(ses, account="x@example.jp", source=b)
        assert throttle.check(ses, lim, account="x@example.jp", source=a, now=t) is not None
        throttle.note_success(ses, account="x@example.jp", source=a)
        assert throttle.check(ses, lim, account="x@example.jp", source=a, now=t) is None
        # The delay never exceeds its cap, however many failures.
        assert lim.delay_after(10_000) == timedelta(minutes=s.login_max_delay_minutes)
        throttle.purge_old(ses, lim, now=t + lim.longest_window + timedelta(seconds=1))
        assert ses.execute(sa.select(sa.func.count()).select_from(sa.table("login_failures"))).scalar_one() == 0
        ses.rollback()


def test_a_forged_or_foreign_device_cookie_is_a_stranger(app, factory):
    from portal.auth import devices

    secret = app.config["SETTINGS"].require_secret()
    value = devices.remember(None, 7, secret)
    assert devices.read(value, secret, 180).knows(7)
    assert not devices.read(value, secret, 180).knows(8)
    assert devices.read(value, "another secret of enough length for it" * 2, 180) is None
    assert devices.read(value[:-2] + ("AA" if not value.endswith("AA") else "BB"), secret, 180) is None
    assert devices.read("garbage", secret, 180) is None
    again = devices.read(devices.remember(devices.read(value, secret, 180), 9, secret), secret, 180)
    assert again.id == devices.read(value, secret, 180).id and again.user_ids == (7, 9)

    # Through the pages: a cookie for another account does not open this one's throttle.
    s = app.config["SETTINGS"]
    owner, other = factory.user("filer"), factory.user("filer")
    attacker = _client(app, ATTACKER)
    sign_in(attacker, other)  # the attacker's own account: a real cookie, for itself
    _sign_out(attacker)
    for i in range(s.login_free_failures):
        _login(attacker, owner.email, f"guess {i}")
    assert _login(attacker, owner.email, PASSWORD).status_code == 429
    assert _login(attacker, other.email, PASSWORD).status_code == 302


# ---------------------------------------------------------------- what an attacker gets (README numbers)

def _greedy(ses, lim, start, hours, pick):
    """An attacker who tries again the moment the throttle allows: how many guesses are checked
    within ``hours``. ``pick(n)`` gives the n-th attempt's (account, source)."""
    from portal.auth import throttle

    t, end, n, rules = start, start + timedelta(hours=hours), 0, set()
    while True:
        account, source = pick(n)
        hold = throttle.check(ses, lim, account=account, source=source, now=t)
        if hold is not None:
            rules.add(hold.rule)
            t = hold.until
        if t >= end:
            return n, rules
        if hold is None:
            throttle.note_failure(ses, account=account, source=source, now=t)
            n += 1


def test_guesses_an_attacker_gets_per_hour_and_per_day(app):
    from portal import db
    from portal.auth import services, throttle
    from portal.db import utcnow

    s = app.config["SETTINGS"]
    lim = services.limits(s)
    one = throttle.Source(ATTACKER)
    with app.app_context():
        ses = db.session()
        t0 = utcnow()
        # One address against one account.
        assert _greedy(ses, lim, t0, 1, lambda n: ("a@example.jp", one))[0] == 10
        ses.rollback()
        first_day, rules = _greedy(ses, lim, t0, 24, lambda n: ("a@example.jp", one))
        assert first_day == 17 and "account" not in rules
        ses.rollback()
        three_days, rules = _greedy(ses, lim, t0, 72, lambda n: ("a@example.jp", one))
        assert three_days == 42 and rules == {"pair"}  # about 12 a day; never reaches the account ceiling
        ses.rollback()
        # A new address for every guess, against one account: the ceiling.
        assert _greedy(ses, lim, t0, 24, lambda n: ("a@example.jp", throttle.Source(f"10.0.{n // 250}.{n % 250}")))[0] \
            == s.login_max_failures_account
        ses.rollback()
        # One address, a new account for every guess (spraying).
        assert _greedy(ses, lim, t0, 1, lambda n: (f"u{n}@example.jp", one))[0] == 4 * s.login_max_failures_address
        ses.rollback()
