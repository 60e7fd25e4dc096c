"""Requests per second of the reports list against the trivial endpoint, over real HTTP (issue 4).

Builds a throwaway PostgreSQL database with 100,000 prior reports (about 60% in the signed-in
filer's organisation, the rest in another one), serves the portal with gunicorn (2 sync
workers, production settings), signs in as the filer over HTTP and drives, one after the other:

    GET /livez                       the trivial endpoint of the same app (the baseline)
    GET /reports                     the filer's list, page 1 (50 rows, with the total count)
    GET /reports?status=submitted    the same, filtered
    GET /account                     for information: a signed-in page without a list
    GET /livez with the cookie       for information: what a session costs before any view

each for --seconds with --connections concurrent connections, using wrk when it is installed
(`apt-get install wrk`; a C load generator leaves the 2 cores to the server) or Python threads
otherwise. Goal: list RPS / trivial RPS >= 0.25.

    .venv/bin/python bench/reports_list.py [URL] [--reports 100000] [--seconds 10]
        [--connections 8] [--workers 2] [--tool auto|wrk|python] [--keep] [--ddl SQL ...]

URL defaults to $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/ttr_bench_reports;
that database is dropped and created afresh, and dropped again at the end (also on error)
unless --keep. --ddl runs extra SQL after the load (a proposed index, before its migration
exists). Only loopback addresses are used. One JSON line is appended to
bench/results/reports_list.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from _common import ROOT, database_url, drop_database, recreate_database, write_result

# Ratios to the reference app's matching route (issue 20).
GOAL_LIST = 0.2
GOAL_FLOOR = 0.5
HOST = "127.0.0.1"
PASSWORD = "bench: correct horse battery staple 42"
FILER_EMAIL = "filer@bench.example"
STATUS_WEIGHTS = (("submitted", 30), ("under_review", 20), ("closed", 35), ("draft", 15))
CLASSIFICATION_WEIGHTS = (("public", 20), ("restricted", 50), ("confidential", 30))
COUNTRIES = ("VN", "TH", "MY", "ID", "IN", "PH", "CN", "TW", "KR", "MX", "BR", "DE")


# ---------------------------------------------------------------- database

def _corporate_number(n: int) -> str:
    from portal.orgs.corporate_number import check_digit

    base = f"{9000_0000_0000 + n:012d}"
    return f"{check_digit(base)}{base}"


def prepare_field_encryption(settings) -> None:
    """What `portal init` does after migrating: the field-encryption data key (portal.encryption.sealed),
    so that sealed columns such as reports.draft can be written and read."""
    try:
        from portal.encryption import sealed
        from portal.encryption.opener import keyring_for
    except ImportError:  # a tree without field encryption
        return
    from portal.db import make_engine

    keyring = keyring_for(settings.keyring_path)
    sealed.configure(keyring, settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            sealed.ensure_field_key(conn, keyring)
    finally:
        engine.dispose()


def seed_people(url: str) -> dict:
    """Two company organisations with facility clearances; the filer (confidential, T01) in
    the first, another filer in the second (the creator of that organisation's reports)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from portal.access.models import Clearance
    from portal.auth.models import User
    from portal.auth.passwords import Argon2Params, hash_password
    from portal.catalogue.models import Technology
    from portal.db import make_engine
    from portal.orgs.models import Organisation

    engine = make_engine(url)
    today = date.today()
    try:
        with Session(engine) as s, s.begin():
            orgs = []
            for n, name in ((1, "株式会社ベンチ電子"), (2, "ベンチマテリアル株式会社")):
                org = Organisation(name=name, corporate_number=_corporate_number(n), address="東京都千代田区",
                                   facility_clearance_from=today - timedelta(days=30),
                                   facility_clearance_until=today + timedelta(days=365))
                s.add(org)
                orgs.append(org)
            s.flush()
            t01 = s.execute(select(Technology).where(Technology.code == "T01")).scalar_one()
            users = []
            for org, email in ((orgs[0], FILER_EMAIL), (orgs[1], "filer-other@bench.example")):
                u = User(email=email, name="ベンチ 申請者", role="filer", organisation_id=org.id, locale="ja",
                         password_hash=hash_password(PASSWORD, Argon2Params()))
                s.add(u)
                s.flush()
                s.add(Clearance(user_id=u.id, level="confidential", expires_on=today + timedelta(days=3650),
                                reason="benchmark", compartments=[t01]))
                users.append(u)
            techs = dict(s.execute(select(Technology.code, Technology.id)).all())
            return {"filer_org": orgs[0].id, "other_org": orgs[1].id, "filer": users[0].id,
                    "other_user": users[1].id, "techs": techs}
    finally:
        engine.dispose()


def _draft_json(rnd: random.Random, i: int, tech: str, classification: str, country: str,
                transfer: date, contract: date) -> str:
    return json.dumps({
        "contact_name": "ベンチ 申請者", "contact_email": FILER_EMAIL, "contact_phone": "03-0000-0000",
        "technology": tech, "transfer_form": "licence", "classification": classification,
        "description": ("当該技術の製造条件及び品質管理手法に関する技術資料を提供する。" * 6)[: 120 + rnd.randrange(200)],
        "counterparty_name": f"Counterparty {i} Co., Ltd.", "counterparty_country": country,
        "counterparty_relation": "unrelated", "shareholding": None,
        "destination_country": country, "currency": "JPY", "amount": str(rnd.randrange(1, 500) * 100000),
        "contract_date": contract.isoformat(), "transfer_date": transfer.isoformat(),
        "measures": ["contract_clause", "access_control"],
    }, ensure_ascii=False, sort_keys=True)


def load_reports(url: str, ids: dict, n: int, ddl: list[str], share: float = 0.6, seed: int = 4) -> dict:
    """COPY ``n`` reports in, run the extra ``ddl`` (a proposed index, say); returns how many
    of each kind went where."""
    import psycopg

    from portal.reports.models import Report

    rnd = random.Random(seed)
    statuses = [s for s, w in STATUS_WEIGHTS for _ in range(w)]
    classes = [c for c, w in CLASSIFICATION_WEIGHTS for _ in range(w)]
    codes = sorted(ids["techs"])
    now = datetime.now(timezone.utc)
    # Sealed columns are bound to their row's key, so the rows get their ids here.
    cols = ("id", "organisation_id", "created_by_id", "status", "reference", "technology_id", "classification",
            "destination_country", "planned_transfer_date", "title", "draft", "created_at", "updated_at",
            "submitted_at", "version_count")
    counts = {"filer_org": 0, "other_org": 0, "filer_org_submitted": 0}
    ref = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        first_id = cur.execute("SELECT COALESCE(max(id), 0) + 1 FROM reports").fetchone()[0]
        with cur.copy(f"COPY reports ({', '.join(cols)}) FROM STDIN") as cp:
            for i in range(n):
                mine = rnd.random() < share
                # The filer holds compartment T01 only: its organisation files T01 reports, so
                # every row of its list is one the policy lets it see (50 rows on page 1).
                tech = "T01" if mine else rnd.choice(codes)
                status = rnd.choice(statuses)
                classification = rnd.choice(classes)
                country = rnd.choice(COUNTRIES)
                created = now - timedelta(days=rnd.uniform(0, 730))
                updated = min(now, created + timedelta(days=rnd.uniform(0, 60)))
                submitted = None
                reference = None
                if status != "draft":
                    ref += 1
                    reference = f"TTR-2025-{ref:06d}"
                    submitted = min(updated, created + timedelta(days=rnd.uniform(0, 20)))
                contract = (created + timedelta(days=rnd.randrange(10, 90))).date()
                transfer = contract + timedelta(days=rnd.randrange(30, 240))
                rid = first_id + i
                cp.write_row((rid, ids["filer_org"] if mine else ids["other_org"],
                              ids["filer"] if mine else ids["other_user"], status, reference, ids["techs"][tech],
                              classification, country, transfer, Report.title.seal(rid, f"Counterparty {i} Co., Ltd."),
                              Report.draft.seal(rid, _draft_json(rnd, i, tech, classification, country, transfer,
                                                                 contract)),
                              created, updated, submitted, 0 if status == "draft" else 1))
                counts["filer_org" if mine else "other_org"] += 1
                counts["filer_org_submitted"] += mine and status == "submitted"
        cur.execute("SELECT setval(pg_get_serial_sequence('reports', 'id'), (SELECT max(id) FROM reports))")
        conn.commit()
        for stmt in ddl:
            cur.execute(stmt)
        conn.commit()
        # What autovacuum would have done by the time people use the list: fresh statistics
        # and a visibility map (index-only scans).
        conn.autocommit = True
        cur.execute("VACUUM (ANALYZE)")  # reports, and the report tallies the load's triggers updated
    return counts


# ---------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_gunicorn(url: str, instance: Path, secret: str, port: int, workers: int, log: Path,
                   extra_env: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(extra_env or {})
    env.update(PORTAL_DATABASE_URL=url, PORTAL_INSTANCE_PATH=str(instance), PORTAL_SECRET_KEY=secret,
               PORTAL_ENV="production", PORTAL_BASE_URL=f"http://{HOST}:{port}",
               # The defaults, spelled out: the filer's hash was made with them (no re-hash at sign-in).
               PORTAL_ARGON2_MEMORY_KIB="19456", PORTAL_ARGON2_ITERATIONS="2", PORTAL_ARGON2_LANES="1")
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{HOST}:{port}"]
    helptext = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout
    if "--no-control-socket" in helptext:  # newer gunicorn: no shared ~/.gunicorn/gunicorn.ctl between runs
        cmd.append("--no-control-socket")
    cmd.append("wsgi:app")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _commit() -> str | None:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def write_field_keys(settings, path: Path) -> None:
    """The field data keys, unwrapped, for the reference app (bench/reference_app.py) to open
    the same sealed titles and bodies; written into the throwaway instance folder (0600)."""
    import psycopg

    from portal.encryption import sealed

    cipher = sealed.cipher()
    with psycopg.connect(settings.database_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM data_keys WHERE purpose = 'field'")]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for kid in ids:
            f.write(f"{kid} {cipher._key(kid)[1].hex()}\n")


def start_reference(url: str, keys: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    """The bare Flask + psycopg + Jinja app, under the same gunicorn settings as the portal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "REFERENCE_"))}
    env.update(REFERENCE_DATABASE_URL=url, REFERENCE_FIELD_KEYS=str(keys), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{HOST}:{port}"]
    helptext = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout
    if "--no-control-socket" in helptext:
        cmd.append("--no-control-socket")
    cmd.append("bench.reference_app:app")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def measure(load, port: int, path: str, cookie: str | None, seconds: float, connections: int,
            server_pid: int, dbname: str) -> dict:
    """Warm up, then one timed load with the CPU the server and its PostgreSQL backends used."""
    load(port, path, cookie, min(2.0, seconds), connections)  # pools, template and statement caches
    before = cpu_seconds(server_pid, dbname)
    r = load(port, path, cookie, seconds, connections)
    after = cpu_seconds(server_pid, dbname)
    for k in ("app", "postgres"):
        r[f"cpu_ms_per_request_{k}"] = round((after[k] - before[k]) / max(1, r["requests"]) * 1000, 3)
    if r["non_2xx_3xx"] or r["socket_errors"]:
        raise RuntimeError(f"GET {path}: {r['non_2xx_3xx']} error responses, {r['socket_errors']} socket errors")
    return r


def print_line(who: str, label: str, r: dict) -> None:
    print(f"  {who:<9} GET {label:<28} {r['rps']:8.1f} req/s   p50 {r['latency_ms_p50']} ms   "
          f"p99 {r['latency_ms_p99']} ms   ({r['requests']} requests in {r['seconds']:.1f} s; CPU per request: "
          f"app {r['cpu_ms_per_request_app']:.2f} ms, PostgreSQL {r['cpu_ms_per_request_postgres']:.2f} ms)")


# What a result key measures, in the tables. The keys stay as the stored results name them:
# "signed_in_floor" has always been /account, the floor itself "trivial_with_session".
SHOWN_AS = {"trivial_with_session": "signed-in floor: /livez with the cookie", "signed_in_floor": "/account"}



def _measure_round(targets, port, ref_port, proc, ref, load, args, dbname) -> tuple[dict, dict]:
    """Each portal route, the reference's matching route measured just before it."""
    results, reference = {}, {}
    for name, path, ck, total, ref_path in targets:
        if total is not None:
            check_list_page(port, ck, path, total)
            check_list_page(ref_port, ck, ref_path, total)
        elif ck and request(port, "GET", path, cookie=ck)[0] != 200:
            raise RuntimeError(f"GET {path}: not 200 (not signed in?)")
        if ck and request(ref_port, "GET", ref_path, cookie=ck)[0] != 200:
            raise RuntimeError(f"reference GET {ref_path}: not 200")
        if ref_path not in reference:
            reference[ref_path] = measure(load, ref_port, ref_path, ck, args.seconds, args.connections,
                                          ref.pid, dbname)
            print_line("reference", ref_path, reference[ref_path])
        r = results[name] = measure(load, port, path, ck, args.seconds, args.connections, proc.pid, dbname)
        r["reference_path"] = ref_path
        print_line("portal", path + (" (with cookie)" if ck and path == "/livez" else ""), r)
    return results, reference


def ratio_table(rows: list[tuple[str, dict, dict]]) -> str:
    """route | reference rps | portal rps | ratio | portal p50/p99 | reference p50/p99 (Markdown).
    A row's name is a result key, then the reference's route in brackets."""
    out = ["| route | reference req/s | portal req/s | ratio | portal p50 / p99 ms | reference p50 / p99 ms |",
           "|---|---|---|---|---|---|"]
    for name, ref, mine in rows:
        key, _, rest = name.partition(" ")
        name = f"{key} [{SHOWN_AS[key]}] {rest}" if key in SHOWN_AS else name
        out.append(f"| {name} | {ref['rps']:.0f} | {mine['rps']:.0f} | {mine['rps'] / ref['rps']:.3f} | "
                   f"{mine['latency_ms_p50']} / {mine['latency_ms_p99']} | "
                   f"{ref['latency_ms_p50']} / {ref['latency_ms_p99']} |")
    return "\n".join(out)


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop; it stops its own workers
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def request(port: int, method: str, path: str, *, cookie: str | None = None, body: str | None = None,
            timeout: float = 30) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {}
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()} | {
            "set-cookie-all": resp.headers.get_all("Set-Cookie") or []}, text
    finally:
        conn.close()


def wait_live(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if request(port, "GET", "/livez", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /livez within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _session_cookie(headers: dict) -> str | None:
    for line in headers["set-cookie-all"]:
        m = re.match(r"ttr_session=([^;]*)", line)
        if m:
            return m.group(1)
    return None


def sign_in(port: int) -> str:
    """GET the form, POST e-mail and password with its CSRF token; returns the Cookie header."""
    from urllib.parse import urlencode

    status, headers, html = request(port, "GET", "/auth/login")
    if status != 200:
        raise RuntimeError(f"GET /auth/login: {status}")
    token = _session_cookie(headers)
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not (token and m):
        raise RuntimeError("no session cookie or CSRF token on /auth/login")
    body = urlencode({"email": FILER_EMAIL, "password": PASSWORD, "csrf_token": m.group(1)})
    status, headers, text = request(port, "POST", "/auth/login", cookie=f"ttr_session={token}", body=body)
    token = _session_cookie(headers)
    if status != 302 or not token:
        raise RuntimeError(f"sign-in failed: {status} {text[:500]}")
    return f"ttr_session={token}"


def check_list_page(port: int, cookie: str, path: str, expect_total: int) -> int:
    """The page is the real list: 200, signed in, 50 rows and the exact total."""
    status, _h, html = request(port, "GET", path, cookie=cookie)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} (not signed in?)")
    rows = len(re.findall(r'<a href="/reports/\d+">', html))
    if not re.search(rf"(?<![\d,]){expect_total:,}(?![\d,])|(?<!\d){expect_total}(?!\d)", html):
        raise RuntimeError(f"GET {path}: the total {expect_total} is not on the page")
    if rows != 50:
        raise RuntimeError(f"GET {path}: {rows} rows instead of 50")
    return rows


# ---------------------------------------------------------------- load

def cpu_seconds(server_pid: int, dbname: str) -> dict[str, float]:
    """CPU time used so far by the gunicorn master and workers, and by PostgreSQL backends
    serving ``dbname`` (Linux /proc). Per request this is steadier than RPS on a shared machine.
    Parallel query workers are short-lived and not counted: a parallel plan's cost is understated."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"app": 0.0, "postgres": 0.0}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid, used = int(stat[1]), (int(stat[11]) + int(stat[12])) / tick
        if int(pid) == server_pid or ppid == server_pid:
            out["app"] += used
        elif cmd.startswith("postgres:") and f" {dbname} " in cmd:
            out["postgres"] += used
    return out


def run_wrk(port: int, path: str, cookie: str | None, seconds: float, connections: int,
            headers: dict | None = None) -> dict:
    threads = min(connections, 2)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "10s", "--latency"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    for k, v in (headers or {}).items():  # bench/api_list.py: a bearer token
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    n, dur = int(m.group(1)), float(m.group(2)) * (0.001 if m.group(3) == "ms" else 1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = {q: _ms(re.search(rf"^\s+{q}%\s+([\d.]+\w+)", out, re.MULTILINE)) for q in ("50", "99")}
    return {"requests": n, "seconds": round(dur, 3), "rps": n / dur, "non_2xx_3xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
            "latency_ms_p50": lat["50"], "latency_ms_p99": lat["99"]}


def _ms(m) -> float | None:
    if not m:
        return None
    v = m.group(1)
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if v.endswith(unit):
            return round(float(v[: -len(unit)]) * f, 3)
    return None


def run_python(port: int, path: str, cookie: str | None, seconds: float, connections: int,
               headers: dict | None = None) -> dict:
    """Fallback load: one thread per connection, HTTP/1.1 with keep-alive where the server allows."""
    headers = {**({"Cookie": cookie} if cookie else {}), **(headers or {})}
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    bad = [0]
    lock = threading.Lock()

    def worker():
        conn = None
        mine, nbad = [], 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=10)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    nbad += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                nbad += 1
                conn = None
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)
            bad[0] += nbad

    start = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(connections)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dur = time.perf_counter() - start
    lat.sort()
    return {"requests": len(lat), "seconds": round(dur, 3), "rps": len(lat) / dur, "non_2xx_3xx": bad[0],
            "socket_errors": 0, "latency_ms_p50": round(lat[len(lat) // 2] * 1000, 3) if lat else None,
            "latency_ms_p99": round(lat[int(len(lat) * 0.99)] * 1000, 3) if lat else None}


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the database and the instance folder afterwards")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every route this many times, each after its reference; report the median round")
    ap.add_argument("--ddl", action="append", default=[], metavar="SQL",
                    help="extra SQL run after the load, e.g. a proposed index not yet in a migration (repeatable)")
    args = ap.parse_args(argv)
    url = database_url(args.url, "ttr_bench_reports")
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    if tool == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --tool python")
    load = run_wrk if tool == "wrk" else run_python

    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]  # other work on the 2 cores skews every number: record it
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-reports-"))
    proc = ref = None
    created = False
    try:
        from portal.config import Settings
        from portal.encryption.instance import ensure_instance

        secret = os.urandom(32).hex()
        instance = tmp / "instance"
        settings = Settings.from_env({}, instance_path=instance, database_url=url, secret_key=secret)
        ensure_instance(settings)

        t0 = time.perf_counter()
        created = True  # from here on the database is dropped at the end, whatever happens
        recreate_database(url)
        prepare_field_encryption(settings)
        ids = seed_people(url)
        counts = load_reports(url, ids, args.reports, args.ddl)
        t_load = time.perf_counter() - t0
        print(f"loaded {args.reports:,} reports in {t_load:.1f} s "
              f"({counts['filer_org']:,} in the filer's organisation, {counts['other_org']:,} in the other)")

        dbname = url.rsplit("/", 1)[1].split("?", 1)[0]
        port, ref_port = free_port(), free_port()
        log, ref_log = tmp / "gunicorn.log", tmp / "reference.log"
        keys = tmp / "instance" / "field-keys.bench"
        write_field_keys(settings, keys)
        proc = start_gunicorn(url, instance, secret, port, args.workers, log)
        ref = start_reference(url, keys, ref_port, args.workers, ref_log)
        wait_live(port, proc, log)
        wait_live(ref_port, ref, ref_log)
        cookie = sign_in(port)
        # Each portal route against the reference's matching route (bench/reference_app.py),
        # the reference measured just before it: both see the same load on the shared cores.
        #   /livez with the cookie: what every signed-in request pays before any view runs;
        #   /account: a signed-in page without a list, the most any signed-in page can reach.
        targets = [("trivial", "/livez", None, None, "/livez"),
                   ("trivial_with_session", "/livez", cookie, None, "/session"),
                   ("signed_in_floor", "/account", cookie, None, "/session"),
                   ("list", "/reports", cookie, counts["filer_org"], "/reports"),
                   ("list_submitted", "/reports?status=submitted", cookie, counts["filer_org_submitted"],
                    "/reports?status=submitted")]
        rounds = []
        for rnd in range(args.rounds):
            if args.rounds > 1:
                print(f"round {rnd + 1} of {args.rounds}")
            rounds.append(_measure_round(targets, port, ref_port, proc, ref, load, args, dbname))
        results, route_ref, per_round = {}, {}, {}
        for name in rounds[0][0]:
            # A route's figure is the round with its median ratio, each with its own reference
            # (as in review_console.py: one 10-second window on a shared machine can be a neighbour's).
            ratio_in = [res[name]["rps"] / ref_[res[name]["reference_path"]]["rps"] for res, ref_ in rounds]
            per_round[name] = [round(x, 4) for x in ratio_in]
            res, ref_ = rounds[ratio_in.index(statistics.median_low(ratio_in))]
            results[name], route_ref[name] = res[name], ref_[res[name]["reference_path"]]
            results[name]["reference_rps"] = round(route_ref[name]["rps"], 1)
        reference = {}
        for name, r in results.items():
            reference.setdefault(r["reference_path"], route_ref[name])
        # Still signed in at the end: every request measured above was the real page.
        check_list_page(port, cookie, "/reports", counts["filer_org"])

        ratios = {k: results[k]["rps"] / route_ref[k]["rps"] for k in results}
        ok = min(ratios["list"], ratios["list_submitted"]) >= GOAL_LIST and ratios["trivial_with_session"] >= GOAL_FLOOR
        elapsed = time.perf_counter() - t_start
        print(ratio_table([(f"{n} ({results[n]['reference_path']})", route_ref[n], results[n]) for n in results]))
        if args.rounds > 1:
            print(f"ratios in each of {args.rounds} rounds (the table shows the round with the median): " +
                  "; ".join(f"{k} {', '.join(f'{v:.3f}' for v in vs)}" for k, vs in per_round.items()))
        print(f"reports_list: ratios to the reference: signed-in floor {ratios['trivial_with_session']:.3f} "
              f"(goal >= {GOAL_FLOOR}), /account {ratios['signed_in_floor']:.3f}, list {ratios['list']:.3f} "
              f"(submitted {ratios['list_submitted']:.3f}; goal >= {GOAL_LIST}), /livez {ratios['trivial']:.3f}; "
              f"{'met' if ok else 'NOT met'} [{tool}, {args.connections} connections, {args.workers} workers, "
              f"{args.reports:,} reports; whole run {elapsed:.0f} s; load average before {load_before:.1f}, "
              f"after {os.getloadavg()[0]:.1f}]")
        path = write_result("reports_list", {
            "reports": args.reports, "filer_org_reports": counts["filer_org"],
            "filer_org_submitted": counts["filer_org_submitted"], "load_seconds": round(t_load, 1),
            "tool": tool, "connections": args.connections, "gunicorn_workers": args.workers,
            "seconds_per_endpoint": args.seconds, "commit": _commit(),
            "endpoints": {k: {**v, "rps": round(v["rps"], 1)} for k, v in results.items()},
            "reference": {k: {**v, "rps": round(v["rps"], 1)} for k, v in reference.items()},
            "ratios_to_reference": {k: round(v, 3) for k, v in ratios.items()},
            "rounds": args.rounds, "ratios_in_each_round": per_round,
            "extra_ddl": args.ddl, "goal_list": GOAL_LIST, "goal_floor": GOAL_FLOOR, "goal_met": ok,
            "total_seconds": round(elapsed, 1),
            "loadavg_1m_before": round(load_before, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
        })
        print(f"result appended to {path}")
        return 0 if ok else 2
    except BaseException:
        for log in (tmp / "gunicorn.log", tmp / "reference.log"):
            if log.exists():
                print(f"--- the end of {log.name}:\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        stop_gunicorn(proc)
        stop_gunicorn(ref)
        if args.keep:
            print(f"kept {url} and its instance folder (keyring) {tmp / 'instance'}")
        else:
            if created:
                drop_database(url)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
