"""Generative tests of every route (issue 13, must-deliver 8).

Hypothesis drives every rule of ``app.url_map`` (each of its methods) as every role variant of
the access world (``tests/access_world.py``: eleven signed-in people of every role, their
organisations, cases, files and informs) and as a stranger, with hostile values in every path
parameter, query parameter and form field: huge and negative numbers, far dates, NUL, invalid
UTF-8 escapes, 100,000-character strings, bidi characters, markup and SQL metacharacters —
mixed with the world's real ids and plausible values, so that requests get past the guard
and into the services. One example is one set of values, sent once as each of the twelve
callers, with a valid CSRF token most of the time.

What must hold, on SQLite and on PostgreSQL:

* no answer is a server error (5xx, or an exception out of the app);
* a refused request (any 4xx; 403 and 404 above all) changes nothing in the database or the
  blob store (the fingerprint of ``World``, plus the outbox, notifications and case events);
* the portal still answers ``/healthz`` after every example.

An allowed request may change the world; it is put back (``World.heal``) and every session
it ended is signed in again, so one example does not decide what the next can reach.

Profiles: ``PORTAL_FUZZ_EXAMPLES`` examples per route (default 2: the short profile of
``make test``); ``make fuzz`` runs the long one on both databases. Each run appends the number
of generated requests to ``fuzz-requests.jsonl`` in pytest's base temporary directory and the
total is printed at the end of the run.
"""
from __future__ import annotations

import html.parser
import itertools
import json
import logging
import os
import re
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.access_world import PDF, VARIANTS, World, _norm, diff
from tests.conftest import PASSWORD, WORKER, csrf_of, sign_in

EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "2"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 2, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                       HealthCheck.filter_too_much])

# ============================================================================ hostile values

NUMBERS = ["0", "-1", "-0", "1", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967296",
           "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1" * 40, "9" * 400,
           "1e308", "1e309", "NaN", "inf", "-inf", "0x10", "1.5", "+1", " 1", "1 ", "00000001", "１２", "١٢", "²",
           "1_000", "10**100"]
DATES = ["9999-12-31", "0001-01-01", "0001-01-02", "0000-00-00", "10000-01-01", "2024-02-30", "2025-13-01",
         "-0001-01-01", "1900-01-01", "1899-12-31", "2999-12-31", "3000-01-01", "5000-06-30", "99999-12-31",
         "2026-1-1", "２０２６－０１－０１", "2026/01/01", "2026-01-01T00:00:00", "1970-01-01", "9999-12-31T23:59:59Z",
         "令和8年1月1日", "R08.01.01"]
NUL = ["\x00", "a\x00b", "T01\x00", "\x00" * 10]
BIDI = ["\u202e", "photo\u202egnp.txt", "\u2066x\u2069", "\u200f", "T\u202e01", "\u202a\u202b\u202c\u202d",
        "\u061c", "\u2028", "\ufeff"]
MARKUP = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{7*7}}", "{% print 1 %}", "${7*7}",
          "javascript:alert(1)", "<!--", "]]>", "&amp;", "'\"><svg/onload=alert(1)>", "<a href='//evil.example'>x</a>"]
SQL = ["' OR '1'='1", "1; DROP TABLE users;--", "%", "_", "\\", "1' --", "\" OR 1=1 --", "' UNION SELECT NULL--",
       "%' OR 1=1 --", "1)) OR ((1=1", "\\'; --", "$1", ":param", "?"]
OTHER = ["", " ", "\t", "\r\n", "null", "None", "true", "[]", "{}", "../../etc/passwd", "%2e%2e%2f", "=1+2",
         "@SUM(1)", "-1+1", "\r=cmd", "👩\u200d🔬", "ｱｲｳ", "\u3000", "a" * 257, "x@y", "=1+2@demo.example",
         "//evil.example", "http://evil.example/", "/\\evil.example"]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc", b"a\xe3\x81", b"\xf4\x90\x80\x80",
                b"T0\xff", b"%\xff%"]
HUGE = ["A" * 100_000, "あ" * 100_000, "9" * 100_000, "\u202e" * 100_000, "<b>" * 33_334, "' OR 1=1 --" * 9_091]
# Values that get past the first check somewhere: real levels, roles, codes, countries, steps.
PLAUSIBLE = ["restricted", "confidential", "csi", "public", "filer", "org_admin", "reviewer", "approver", "auditor",
             "security_officer", "admin", "T01", "T14", "T19", "JP", "VN", "US", "licensing", "subsidiary", "JPY",
             "USD", "y", "1", "on", "me", "external", "internal", "ja", "en", "csv", "jsonl", "success", "denied",
             "submitted", "under_review", "returned", "transfer", "contract_clauses", "access_control", "51", "100",
             "山田 太郎", "taro@example.jp", "1180301018771", "株式会社サンプル", "外国為替及び外国貿易法第55条の8",
             (date.today() + timedelta(days=30)).isoformat(), date.today().isoformat(), "/", "/reports", "123456"]

STEPS = ["contact", "technology", "counterparty", "transfer", "measures"]
FILE_CONTENTS = [PDF, b"", b"plain text\n", b"\x00" * 64, b"MZ\x90\x00\x03" + b"\x00" * 60,
                 b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"PK\x03\x04" + b"\x00" * 60, b"<html><script>alert(1)</script>",
                 b"%PDF-1.7\n" + b"A" * 300_000]
FILE_NAMES = ["a.pdf", "photo\u202egnp.txt", "../../etc/passwd", "C:\\x\\y.pdf", "CON", "a" * 1000 + ".pdf",
              "契約書.pdf", ".pdf", "x.exe", "x.pdf\x00.exe", "<script>.pdf", "", "=1+2.csv"]

# Query parameters the views read, per endpoint (the views' own ``request.args``), and some
# every view may meet.
QUERY = {
    "reports.index": ["status", "technology", "page"],
    "review.queue": ["status", "technology", "country", "assignee", "overdue", "unread", "sort", "page"],
    "audit.events": ["action", "actor", "outcome", "case_ref", "from", "to", "org", "before"],
    "audit.export": ["format", "from", "to", "actor", "org", "action", "case_ref", "outcome"],
    "admin.users": ["q"],
    "admin.outbox_view": ["page"],
    "auth.login": ["next"],
    "auth.second_factor": ["recovery"],
    "auth.enrol": ["next"],
    "auth.gbiz_start": ["next"],
    "auth.gbiz_callback": ["code", "state", "iss", "error"],
    "informs.notice": ["lang"],
    "reports.edit": ["back"],
}
GENERIC_QUERY = ["page", "next", "q", "lang", "id", "sort", "from", "to"]

# Form fields, per endpoint: the fields of the forms the pages show (held by
# test_the_fuzzer_knows_every_form_field) and the names the views read themselves.
_STEP_FIELDS = ["contact_name", "contact_email", "contact_phone", "technology", "description", "transfer_form",
                "classification", "counterparty_name", "counterparty_country", "counterparty_address",
                "counterparty_relation", "shareholding", "destination_country", "contract_date", "transfer_date",
                "contract_value", "currency", "group_a_confirmed", "measures", "save_only"]
_INFORM_FIELDS = ["legal_basis", "reasons", "conditions", "internal_rationale", "rationale_classification"]
FIELDS: dict[str, list[str]] = {
    "auth.login": ["email", "password"],
    "auth.second_factor": ["code"],
    "auth.enrol": ["code"],
    "auth.logout": [],
    "auth.change_password": ["current_password", "new_password", "confirm_password"],
    "auth.disable_2fa": [],
    "auth.new_recovery_codes": [],
    "core.language": ["lang", "next"],
    "orgs.accept": ["new_password", "confirm_password"],
    "orgs.invite": ["name", "email", "role"],
    "orgs.disable": [],
    "orgs.enable": [],
    "admin.invite": ["organisation_id", "name", "email", "role"],
    "admin.change_role": ["role"],
    "admin.disable": [],
    "admin.enable": [],
    "admin.organisations": ["name", "corporate_number", "address"],
    "catalogue.index": ["code", "name_ja", "name_en", "effective_from"],
    "catalogue.edit": ["name_ja", "name_en", "effective_until"],
    "catalogue.delete": [],
    "access.grant": ["level", "compartments", "expires_on", "reason"],
    "access.revoke": ["reason"],
    "access.facility": ["valid_from", "valid_until"],
    "reports.new": [],
    "reports.edit": _STEP_FIELDS,
    "reports.check": ["attest"],
    "reports.withdraw": ["comment"],
    "reports.delete": ["confirm"],
    "attachments.upload": ["classification"],
    "attachments.delete": [],
    "dialogue.post": ["body", "classification", "reply_to", "due_date", "request"],
    "informs.create": _INFORM_FIELDS,
    "informs.edit": _INFORM_FIELDS,
    "informs.send": ["comment"],
    "informs.approve": ["comment"],
    "informs.reject": ["comment"],
    "informs.revoke": ["reason"],
    "informs.acknowledge": ["confirm"],
    "informs.licence": ["licence_application_ref"],
    "review.take": [],
    "review.return_": ["comment"],
    "review.close": ["summary"],
    "review.assign": ["assignee"],
    "orgs.issue_api_token": ["name", "user_id", "scopes", "days", "source_addresses"],
    "orgs.revoke_api_token": [],
    # The API's bodies are JSON, not forms: schemathesis generates them from the OpenAPI
    # document (tests/test_api_fuzz.py). Here they are sent forms with no token: 401, nothing read.
    **{e: [] for e in ("api.create_report", "api.submit_report", "api.withdraw_report", "api.upload_attachment",
                       "api.post_message", "api.acknowledge_inform")},
}
MULTIPART = {"attachments.upload", "dialogue.post"}


def valid_form(endpoint: str, f: "Fuzz") -> dict[str, list[str]]:
    """A body the view would accept, per endpoint: each example keeps some of its fields, puts
    hostile values in others and leaves some out, so that hostile values reach the services
    behind the forms' first checks (a far date in an otherwise complete step, a huge id in
    an otherwise valid reply)."""
    from tests.reports_helpers import GOOD, good_values

    today = date.today()
    f.serial += 1
    n = f.serial
    one = lambda **kw: {k: [v] for k, v in kw.items()}  # noqa: E731
    steps: dict[str, list[str]] = {}
    for step in GOOD:
        for k, v in good_values(step).items():
            steps[k] = list(v) if isinstance(v, list) else [v]
    inform = one(legal_basis="外国為替及び外国貿易法第55条の8", reasons="理由", conditions="", internal_rationale="内部",
                 rationale_classification="restricted")
    return {
        "auth.login": one(email=f"nobody{n}@example.jp", password="wrong password 123"),
        "auth.change_password": one(current_password=PASSWORD, new_password="山の上の図書館で静かに読む 2026",
                                    confirm_password="山の上の図書館で静かに読む 2026"),
        "core.language": one(lang="en", next="/"),
        "orgs.invite": one(name="鈴木 花子", email=f"fuzz{n}@example.co.jp", role="filer"),
        "orgs.issue_api_token": {"name": ["ERP"], "user_id": [str(f.w.users["member"].id)],
                                 "scopes": ["reports:read", "messages"], "days": ["30"],
                                 "source_addresses": ["203.0.113.0/24"]},
        "admin.invite": one(organisation_id=str(f.w.org_ids["A"]), name="鈴木 花子", email=f"fuzz{n}@example.co.jp",
                            role="filer"),
        "admin.change_role": one(role="filer"),
        "admin.organisations": one(name=f"株式会社ファズ{n}", corporate_number=_corporate_number(n), address="東京都"),
        "catalogue.index": one(code=f"T{100 + n % 900}", name_ja="新技術", name_en="New", effective_from=today.isoformat()),
        "catalogue.edit": one(name_ja="新技術", name_en="New", effective_until=""),
        "access.grant": {"level": ["confidential"], "compartments": ["T01", "T14"],
                         "expires_on": [(today + timedelta(days=100)).isoformat()], "reason": ["fuzz"]},
        "access.revoke": one(reason="fuzz"),
        "access.facility": one(valid_from=(today - timedelta(days=5)).isoformat(),
                               valid_until=(today + timedelta(days=50)).isoformat()),
        "reports.edit": steps,
        "reports.check": one(attest="y"),
        "reports.withdraw": one(comment="取り下げ"),
        "attachments.upload": one(classification="restricted"),
        "dialogue.post": one(body="ご確認ください。", classification="restricted", reply_to="", due_date="", request=""),
        "informs.create": inform,
        "informs.edit": inform,
        "informs.approve": one(comment="承認"),
        "informs.reject": one(comment="差戻し"),
        "informs.revoke": one(reason="撤回"),
        "informs.acknowledge": one(confirm="y"),
        "informs.licence": one(licence_application_ref="2027-経-000123"),
        "review.return_": one(comment="補足してください。"),
        "review.close": one(summary="問題なし"),
        "review.assign": one(assignee=str(f.w.users["drafter"].id)),
    }.get(endpoint, {})


def _corporate_number(n: int) -> str:
    from portal.orgs.corporate_number import check_digit

    base = f"{800_000_000_000 + n:012d}"
    return f"{check_digit(base)}{base}"
# Public routes that act on the caller's own session: after one, the caller is checked (and
# signed in again if it was signed out).
SESSION_ENDPOINTS = {"auth.logout", "auth.login", "auth.second_factor", "auth.enrol", "orgs.accept",
                     "auth.change_password", "auth.disable_2fa"}
ANONYMOUS = "anonymous"
CALLERS = [w.name for w in VARIANTS] + [ANONYMOUS]


def value() -> st.SearchStrategy:
    """One hostile or plausible value (str, or bytes for what is not UTF-8)."""
    hostile = NUMBERS + DATES + NUL + BIDI + MARKUP + SQL + OTHER
    return st.one_of(
        st.sampled_from(PLAUSIBLE),
        st.sampled_from(PLAUSIBLE),
        st.sampled_from(hostile),
        st.sampled_from(hostile),
        st.sampled_from(INVALID_UTF8),
        st.sampled_from(HUGE),
        st.integers(min_value=-2**80, max_value=2**80).map(str),
        st.dates().map(date.isoformat),
        st.text(max_size=30),
        st.builds(lambda a, b: a + b, st.sampled_from(PLAUSIBLE), st.sampled_from(hostile)),
    )


# ============================================================================ the world

class FuzzWorld(World):
    """The access world, with a few more tables a refused request must leave alone, and a
    heal that puts back every table a request can write (rows changed, added or removed), so
    that the world stays one the portal could have made: a report put back to its first
    version loses the versions a fuzzed resubmission added."""

    EXTRA = ("outbox", "notifications", "report_events", "inform_events", "recovery_codes", "invitations")
    # Not put back: the audit trail (append-only), sessions (the callers keep theirs), the
    # throttle, the counters and tallies the portal keeps itself (triggers follow reports).
    UNTOUCHED = frozenset({"audit_checkpoints", "audit_events", "audit_pending", "blob_chunks", "data_keys", "group_a_countries",
                 "job_runs", "login_failures", "reference_counters", "report_tallies", "user_sessions"})

    def _tables(self):
        from portal.db import Base
        import portal.models  # noqa: F401

        return [t for t in Base.metadata.sorted_tables if t.name not in self.UNTOUCHED]

    def _read(self, c, table) -> dict[tuple, dict]:
        key = [col.name for col in table.primary_key.columns]
        out = {}
        for r in c.execute(sa.text(f"SELECT * FROM {table.name}")).all():
            m = {k: _norm(v) for k, v in r._mapping.items()}
            out[tuple(m[k] for k in key)] = m
        return out

    def snapshot(self) -> None:
        super().snapshot()
        with self.engine.connect() as c:
            self._full = {t.name: self._read(c, t) for t in self._tables()}

    def heal(self) -> None:
        tables = self._tables()
        with self.engine.begin() as c:
            now = {t.name: self._read(c, t) for t in tables}
            for t in reversed(tables):  # children first: what a request added goes
                key = [col.name for col in t.primary_key.columns]
                where = " AND ".join(f"{k} = :{k}" for k in key)
                for pk in sorted(set(now[t.name]) - set(self._full[t.name]), reverse=True):
                    c.execute(sa.text(f"DELETE FROM {t.name} WHERE {where}"), dict(zip(key, pk)))
            for t in tables:  # parents first: what it removed or changed comes back
                key = [col.name for col in t.primary_key.columns]
                where = " AND ".join(f"{k} = :{k}" for k in key)
                for pk, row in self._full[t.name].items():
                    cols = list(row)
                    if pk not in now[t.name]:
                        c.execute(sa.text(f"INSERT INTO {t.name} ({', '.join(cols)}) "
                                          f"VALUES ({', '.join(':' + k for k in cols)})"), row)
                    elif now[t.name][pk] != row:
                        sets = ", ".join(f"{k} = :{k}" for k in cols if k not in key)
                        c.execute(sa.text(f"UPDATE {t.name} SET {sets} WHERE {where}"), row)
        for rel, data in self._blob_snap.items():
            p = self.blob_dir / rel
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        for p in list(self.blob_dir.rglob("*")):
            if p.is_file() and p.parent.name != "tmp" and p.relative_to(self.blob_dir) not in self._blob_snap:
                p.unlink()
        self.baseline = self.fingerprint()

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        import hashlib

        out = super().fingerprint()
        with self.engine.connect() as c:
            for t in self.EXTRA:
                rows = sorted(repr(tuple(_norm(v) for v in r)) for r in c.execute(sa.text(f"SELECT * FROM {t}")).all())
                out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()[:16])
        return out


def _fast_commits(engine):
    from tests.test_access_http import _fast_commits as fast

    return fast(engine)


class _Errors(logging.Handler):
    """The last unhandled exception the app logged (the 500 page hides it)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record):
        if record.exc_info:
            import traceback

            self.last = "".join(traceback.format_exception(*record.exc_info))[-3000:]


@pytest.fixture(scope="module")
def fuzz(base_app, tmp_path_factory):
    from tests.conftest import _clean

    engine = base_app.extensions["db_engine"]
    settings_ = base_app.config["SETTINGS"]
    saved = (settings_.blob_store, settings_.blob_dir, settings_.https)
    blob_dir = tmp_path_factory.mktemp("fuzz-blobs")
    settings_.blob_store, settings_.blob_dir, settings_.https = "directory", blob_dir, False
    undo = _fast_commits(engine)
    _clean(engine)
    with engine.connect() as c:
        techs = [dict(r._mapping) for r in c.execute(sa.text("SELECT * FROM technologies")).all()]
    errors = _Errors()
    logging.getLogger("portal").addHandler(errors)
    state = None
    try:
        w = FuzzWorld(base_app, blob_dir).build()
        state = Fuzz(w, errors)
        yield state
    finally:
        logging.getLogger("portal").removeHandler(errors)
        _clean(engine)
        _restore_catalogue(engine, techs)
        undo()
        settings_.blob_store, settings_.blob_dir, settings_.https = saved
        if state is not None:
            state.write_count(tmp_path_factory)


def _restore_catalogue(engine, techs: list[dict]) -> None:
    """The catalogue outlives a test (conftest.KEEP): put it back as it was."""
    with engine.begin() as c:
        keep = {t["id"] for t in techs}
        for tid in c.execute(sa.text("SELECT id FROM technologies")).scalars().all():
            if tid not in keep:
                c.execute(sa.text("DELETE FROM technologies WHERE id = :i"), {"i": tid})
        have = set(c.execute(sa.text("SELECT id FROM technologies")).scalars().all())
        for t in techs:
            cols = list(t)
            if t["id"] in have:
                c.execute(sa.text(f"UPDATE technologies SET {', '.join(f'{k} = :{k}' for k in cols[1:])} WHERE id = :id"), t)
            else:
                c.execute(sa.text(f"INSERT INTO technologies ({', '.join(cols)}) VALUES ({', '.join(':' + k for k in cols)})"), t)


class Fuzz:
    """The world, its callers and the bookkeeping of one module's run."""

    def __init__(self, w: FuzzWorld, errors: _Errors):
        self.w = w
        self.app = w.app
        self.errors = errors
        self.requests = 0  # generated requests sent
        self.support = 0  # tokens, session checks, healthz
        self.statuses: Counter = Counter()
        self.reached: Counter = Counter()  # (endpoint, method) answered neither 4xx nor 5xx
        self.heals = 0
        self.resigned = 0
        self.started = time.monotonic()
        self.ids = self._ids()
        self.before = w.fingerprint()
        self._address = 0
        self.serial = 0

    def _ids(self) -> dict[str, list[int]]:
        w = self.w
        q = lambda sql: [r[0] for r in w.q(sql)]  # noqa: E731
        return {
            "report_id": q("SELECT id FROM reports ORDER BY id"),
            "attachment_id": q("SELECT id FROM attachments ORDER BY id"),
            "inform_id": q("SELECT id FROM informs ORDER BY id"),
            "user_id": q("SELECT id FROM users ORDER BY id"),
            "org_id": q("SELECT id FROM organisations ORDER BY id"),
            "tech_id": q("SELECT id FROM technologies ORDER BY id"),
            "seq": q("SELECT seq FROM audit_events ORDER BY seq LIMIT 50"),
            "cp_id": q("SELECT id FROM audit_checkpoints ORDER BY id"),
            "number": [1, 2],
        }

    def address(self) -> str:
        """A source address of its own per request: no caller is held by another's failures."""
        self._address += 1
        n = self._address
        return f"10.{200 + (n >> 16) % 50}.{(n >> 8) & 255}.{n & 255}"

    # ---------------------------------------------------------------- callers and sessions

    def client(self, caller: str):
        if caller == ANONYMOUS:
            c = self.app.test_client()
            self.support += 1
            token = csrf_of(c.get("/auth/login", environ_base={"REMOTE_ADDR": self.address()}).get_data(as_text=True))
            return c, token
        return self.w.clients[caller], self.w.token(caller)

    def signed_in(self, caller: str) -> bool:
        self.support += 1
        resp = self.w.clients[caller].get("/account")
        resp.close()
        return resp.status_code == 200

    def ensure_session(self, caller: str) -> bool:
        """Sign ``caller`` in again if a request ended its session (True if it had to)."""
        if caller == ANONYMOUS or self.signed_in(caller):
            return False
        user = self.w.users[caller]
        with self.w.engine.begin() as c:  # the replay guard would refuse this step's code again
            c.execute(sa.text("UPDATE users SET totp_last_counter = NULL WHERE id = :i"), {"i": user.id})
        client = self.app.test_client()
        sign_in(client, user)
        self.w.clients[caller] = client
        self.w._tokens.pop(caller, None)
        self.resigned += 1
        self.support += 3
        return True

    def heal(self) -> None:
        self.w.heal()
        self.heals += 1
        for caller in CALLERS:
            self.ensure_session(caller)
        self.before = self.w.fingerprint()

    # ---------------------------------------------------------------- one request

    def send(self, rule, method: str, caller: str, ex: dict) -> list[str]:
        """Send one generated request; the problems it shows."""
        client, token = self.client(caller)
        url = build_url(rule, ex["path"]) + build_query(ex["query"])
        kwargs: dict = {"environ_base": {"REMOTE_ADDR": self.address()}}
        if method == "POST":
            valid = valid_form(rule.endpoint, self)
            fields = [(k, v) for k, choice in ex["form"].items()
                      for v in (valid.get(k, []) if choice == "valid" else [] if choice == "absent" else choice)]
            fields += ex["extra"]
            csrf = {"valid": token, "missing": None}.get(ex["csrf"], ex["csrf_value"])
            if csrf is not None:
                fields.insert(0, ("csrf_token", csrf))
            if rule.endpoint in MULTIPART:
                body, ctype = multipart(fields, ex["file"])
            else:
                body, ctype = urlencoded(fields), "application/x-www-form-urlencoded"
            kwargs.update(data=body, content_type=ctype)
        self.errors.last = None
        self.requests += 1
        label = f"{method} {short(url)} as {caller}"
        try:
            resp = client.open(url, method=method, **kwargs)
            resp.get_data()
            resp.close()
            status = resp.status_code
        except Exception as exc:  # noqa: BLE001 - an exception out of the app is a finding
            import traceback

            return [f"{label}: exception {exc!r}\n{''.join(traceback.format_exc())[-3000:]}"]
        self.statuses[status] += 1
        problems = []
        if status >= 500:
            problems.append(f"{label}: {status}\n{self.errors.last or ''}")
        after = self.w.fingerprint()
        if after != self.before:
            if 400 <= status < 500:
                problems.append(f"{label}: refused with {status} but changed {diff(self.before, after)}")
            self.heal()
        if status < 400:
            self.reached[(rule.endpoint, method)] += 1
        if caller != ANONYMOUS and rule.endpoint in SESSION_ENDPOINTS and self.ensure_session(caller):
            self.before = self.w.fingerprint()
        return problems

    def healthy(self) -> list[str]:
        self.support += 1
        resp = self.app.test_client().get("/healthz")
        resp.close()
        return [] if resp.status_code == 200 else [f"/healthz answers {resp.status_code} after the example"]

    def write_count(self, tmp_path_factory) -> None:
        base = Path(tmp_path_factory.getbasetemp())
        root = base.parent if base.name.startswith("popen-") else base
        record = {"worker": WORKER, "database": self.w.engine.dialect.name, "examples_per_route": EXAMPLES,
                  "requests": self.requests, "support_requests": self.support,
                  "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                  "reached_views": len(self.reached), "heals": self.heals, "signed_in_again": self.resigned,
                  "seconds": round(time.monotonic() - self.started, 1)}
        with open(root / "fuzz-requests.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"\nfuzz [{WORKER}, {record['database']}]: {self.requests} generated requests "
              f"({EXAMPLES} examples per route × {len(CALLERS)} callers), statuses {record['statuses']}")


# ============================================================================ building requests

_ARG = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def _bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass")


def enc(v: str | bytes) -> str:
    return quote(_bytes(v), safe="")


def build_url(rule, path: dict) -> str:
    return _ARG.sub(lambda m: enc(path[m.group(2)]), rule.rule)


def build_query(pairs: list) -> str:
    return ("?" + "&".join(f"{enc(k)}={enc(v)}" for k, v in pairs)) if pairs else ""


def urlencoded(fields: list) -> bytes:
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in fields).encode("ascii")


def _param(v: str | bytes) -> bytes:
    """A name or file name inside a multipart header, as a browser writes it."""
    return _bytes(v).replace(b'"', b"%22").replace(b"\r", b" ").replace(b"\n", b" ")


def multipart(fields: list, file) -> tuple[bytes, str]:
    boundary = b"----fuzz7MA4YWxkTrZu0gW"
    out = []
    for k, v in fields:
        out.append(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + _param(k) + b'"\r\n\r\n'
                   + _bytes(v) + b"\r\n")
    if file is not None:
        name, content = file
        out.append(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + _param(name)
                   + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + content + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out), f"multipart/form-data; boundary={boundary.decode()}"


def short(url: str) -> str:
    return url if len(url) <= 160 else f"{url[:150]}…({len(url)} chars)"


# ============================================================================ the examples

def _rules(app) -> list[tuple[object, str]]:
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule, method))
    return out


def _app_for_collection():
    """The URL map, read once at collection (the routes do not depend on settings)."""
    import tempfile

    from portal import create_app
    from tests.conftest import make_settings

    d = Path(tempfile.mkdtemp(prefix="fuzz-map-"))
    return create_app(make_settings(d, f"sqlite:///{d / 'map.db'}"))


_RULES = [(r.rule, r.endpoint, m) for r, m in _rules(_app_for_collection())]


def path_value(arg: str, ids: dict) -> st.SearchStrategy:
    real = ids.get(arg)
    if real:
        own = st.sampled_from(real).map(str)
        return st.one_of(own, own, own, st.sampled_from(NUMBERS), st.integers(-2**70, 2**70).map(str), value())
    if arg == "step":
        return st.one_of(st.sampled_from(STEPS), st.sampled_from(STEPS), value())
    if arg == "channel":
        return st.one_of(st.sampled_from(["external", "internal"]), st.sampled_from(["external", "internal"]), value())
    if arg == "filename":
        return st.one_of(st.sampled_from(["portal.css", "portal.js", "../portal/config.py"]), value())
    return value()


def example(rule, method: str, ids: dict) -> st.SearchStrategy:
    all_ids = [str(i) for v in ids.values() for i in v]
    val = st.one_of(value(), st.sampled_from(all_ids)) if all_ids else value()
    names = QUERY.get(rule.endpoint, []) + GENERIC_QUERY
    fields = FIELDS.get(rule.endpoint, [])
    return st.fixed_dictionaries({
        "path": st.fixed_dictionaries({a: path_value(a, ids) for a in sorted(rule.arguments)}),
        "query": st.lists(st.tuples(st.sampled_from(names), val), max_size=4),
        # Per field: the valid value, a hostile one (or two), or nothing.
        "form": st.fixed_dictionaries({f: st.one_of(st.just("valid"), st.just("valid"), st.just("absent"),
                                                    st.lists(val, min_size=1, max_size=2)) for f in fields})
        if method == "POST" else st.just({}),
        "extra": st.lists(st.tuples(st.one_of(st.text(max_size=8), st.sampled_from(INVALID_UTF8)), val), max_size=1)
        if method == "POST" else st.just([]),
        "csrf": st.sampled_from(["valid"] * 6 + ["missing", "hostile"]),
        "csrf_value": val,
        "file": st.one_of(st.none(), st.tuples(st.one_of(st.sampled_from(FILE_NAMES), value()),
                                               st.sampled_from(FILE_CONTENTS)))
        if rule.endpoint in MULTIPART and method == "POST" else st.none(),
    })


def _rule(app, text: str, endpoint: str):
    return next(r for r in app.url_map.iter_rules() if r.rule == text and r.endpoint == endpoint)


@pytest.mark.parametrize("rule_text, endpoint, method", _RULES, ids=[f"{m} {r}" for r, e, m in _RULES])
def test_no_route_fails_on_hostile_input(fuzz, rule_text, endpoint, method):
    rule = _rule(fuzz.app, rule_text, endpoint)

    @FUZZ
    @given(ex=example(rule, method, fuzz.ids))
    def run(ex):
        problems = []
        for caller in CALLERS:
            problems += fuzz.send(rule, method, caller, ex)
        problems += fuzz.healthy()
        assert not problems, "\n\n".join(problems)

    run()


# ============================================================================ the fuzzer's own contract

class _Forms(html.parser.HTMLParser):
    """The forms of a page: action, method and the names of their fields (a button's
    ``formaction`` is one more action of its form)."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, str, set[str]]] = []
        self._open: tuple[str, str, set[str]] | None = None
        self.by_button: set[int] = set()  # forms whose buttons say where they post

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._open = (a.get("action") or "", (a.get("method") or "get").upper(), set())
            self.forms.append(self._open)
        elif tag in ("input", "select", "textarea", "button") and self._open is not None:
            if a.get("name"):
                self._open[2].add(a["name"])
            if a.get("formaction"):
                self.forms.append((a["formaction"], self._open[1], self._open[2]))
                self.by_button.add(id(self._open[2]))

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def test_the_fuzzer_knows_every_form_field(fuzz):
    """Every POST route of the URL map has its fields listed, and every field of every form
    the pages show (to each role, on each kind of object) is in the list for its route."""
    app, w = fuzz.app, fuzz.w
    posts = {e for _, e, m in _RULES if m == "POST"}
    assert not posts - set(FIELDS), f"POST routes without a field list: {sorted(posts - set(FIELDS))}"
    adapter = app.url_map.bind("localhost")
    missing: dict[str, set[str]] = {}
    pages = 0
    for rule_text, endpoint, method in _RULES:
        if method != "GET" or endpoint in ("static", "audit.export", "attachments.download", "informs.notice"):
            continue
        rule = _rule(app, rule_text, endpoint)
        candidates = {"report_id": fuzz.ids["report_id"][:12], "user_id": fuzz.ids["user_id"][:6], "step": STEPS,
                      "channel": ["external", "internal"]}
        names = sorted(rule.arguments)
        choices = [dict(zip(names, combo)) for combo in itertools.product(
            *[[str(v) for v in (candidates.get(a) or fuzz.ids.get(a, [])[:1] or ["1"])] for a in names])]
        for caller in ("filer", "org_admin", "reviewer_csi", "approver", "auditor", "security_officer", "admin"):
            for args in choices:
                url = build_url(rule, args)
                resp = w.clients[caller].get(url)
                pages += 1
                if resp.status_code != 200 or "html" not in resp.content_type:
                    resp.close()
                    continue
                parser = _Forms()
                parser.feed(resp.get_data(as_text=True))
                for action, form_method, names in parser.forms:
                    if form_method != "POST":
                        continue
                    path = urlsplit(action).path or url
                    try:
                        target, _ = adapter.match(path, method="POST")
                    except Exception:  # noqa: BLE001 - a form that posts nowhere
                        if id(names) not in parser.by_button:
                            missing.setdefault(f"(no route) {path}", set()).update(names)
                        continue
                    unknown = names - set(FIELDS.get(target, [])) - {"csrf_token"} - (
                        {"file"} if target in MULTIPART else set())
                    if unknown:
                        missing.setdefault(target, set()).update(unknown)
    assert pages > 100
    assert not missing, f"form fields the fuzzer does not send: {missing}"
