"""The API's report list against the web's, over real HTTP in the same run (issue 19); and what
schemathesis finds against the same server.

Builds the same throwaway PostgreSQL database as bench/reports_list.py (100,000 reports, about
60% in the signed-in filer's organisation; its seeding is reused), issues an API token for that
filer, serves the portal with gunicorn (2 sync workers, production settings) and drives, one
after the other:

    GET /reports                     the web list, page 1 (50 rows), signed in by cookie
    GET /api/v1/reports?limit=50     the API list, first page (50 items), bearer token
    GET /livez                       the trivial endpoint, for reference

each for --seconds with --connections concurrent connections (wrk when installed, else
Python threads). Then schemathesis runs against the same server (--fuzz-examples per
operation; 0 skips it), and its generated request count and findings are printed.

    .venv/bin/python bench/api_list.py [URL] [--reports 100000] [--seconds 10] [--connections 8]
        [--workers 2] [--tool auto|wrk|python] [--fuzz-examples 5]

The ratio printed is API list req/s ÷ web list req/s. Every API request is also an audit
event (api.token.use: the issue asks for every use to be recorded), so the API list pays an
insert and a commit the web list does not. One JSON line is appended to
bench/results/api_list.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import database_url, drop_database, recreate_database, write_result
from reports_list import (HOST, check_list_page, cpu_seconds, free_port, load_reports, prepare_field_encryption,
                          run_python, run_wrk, seed_people, sign_in, start_gunicorn, stop_gunicorn, wait_live)


def issue_token(url: str, user_id: int) -> str:
    """A token for the filer through the service the organisation admin's page calls."""
    from sqlalchemy.orm import Session

    from portal.auth import tokens
    from portal.auth.models import User
    from portal.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            user = s.get(User, user_id)
            _row, token = tokens.issue(s, org_id=user.organisation_id, user_id=user.id, name="bench",
                                       scopes=list(tokens.SCOPES), days=1, addresses="", actor=user, ip=None)
            return token
    finally:
        engine.dispose()


def check_api_page(port: int, token: str, path: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    if resp.status != 200 or len(body["items"]) != 50 or not body["next_cursor"]:
        raise RuntimeError(f"GET {path}: {resp.status}, {len(body.get('items', []))} items")
    return len(body["items"])


def fuzz(port: int, token: str, examples: int) -> dict:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"http://{HOST}:{port}/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {token}", "--max-examples", str(examples), "--seed", "19", "--workers", "1",
         "--no-color", "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_headers_conformance,response_schema_conformance"],
        capture_output=True, text=True, timeout=3600)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) generated, (.*)", text)
    failures = re.findall(r"❌ (ST\d+ [^:]+): (\d+)", text)
    return {"exit": out.returncode, "generated": int(m.group(1)) if m else 0,
            "outcome": m.group(2).strip() if m else text[-500:], "findings": {k: int(v) for k, v in failures}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--fuzz-examples", type=int, default=5)
    args = ap.parse_args(argv)
    url = database_url(args.url, "ttr_bench_api")
    tool = "wrk" if args.tool == "auto" and shutil.which("wrk") else ("python" if args.tool == "auto" else args.tool)
    load = run_wrk if tool == "wrk" else run_python
    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-api-"))
    proc = None
    try:
        from portal.config import Settings
        from portal.encryption.instance import ensure_instance

        secret = os.urandom(32).hex()
        instance = tmp / "instance"
        settings = Settings.from_env({}, instance_path=instance, database_url=url, secret_key=secret)
        ensure_instance(settings)
        recreate_database(url)
        prepare_field_encryption(settings)
        ids = seed_people(url)
        counts = load_reports(url, ids, args.reports, [])
        print(f"loaded {args.reports:,} reports ({counts['filer_org']:,} in the filer's organisation)")
        token = issue_token(url, ids["filer"])
        dbname = url.rsplit("/", 1)[1].split("?", 1)[0]
        port = free_port()
        log = tmp / "gunicorn.log"
        # The rate limit out of the way: this measures the list, not the limiter's refusals.
        proc = start_gunicorn(url, instance, secret, port, args.workers, log,
                              extra_env={"PORTAL_API_RATE_PER_MINUTE": str(10**9)})
        wait_live(port, proc, log)
        cookie = sign_in(port)
        bearer = {"Authorization": f"Bearer {token}"}
        targets = [("web_list", "/reports", cookie, None), ("api_list", "/api/v1/reports?limit=50", None, bearer),
                   ("trivial", "/livez", None, None)]
        check_list_page(port, cookie, "/reports", counts["filer_org"])
        check_api_page(port, token, "/api/v1/reports?limit=50")
        results = {}
        for name, path, ck, headers in targets:
            load(port, path, ck, min(2.0, args.seconds), args.connections, headers=headers)  # warm-up
            before = cpu_seconds(proc.pid, dbname)
            r = load(port, path, ck, args.seconds, args.connections, headers=headers)
            after = cpu_seconds(proc.pid, dbname)
            for k in ("app", "postgres"):
                r[f"cpu_ms_per_request_{k}"] = round((after[k] - before[k]) / max(1, r["requests"]) * 1000, 3)
            if r["non_2xx_3xx"] or r["socket_errors"]:
                raise RuntimeError(f"GET {path}: {r['non_2xx_3xx']} error responses, {r['socket_errors']} socket errors")
            results[name] = r
            print(f"  GET {path:<28} {r['rps']:8.1f} req/s   p50 {r['latency_ms_p50']} ms   p99 "
                  f"{r['latency_ms_p99']} ms   ({r['requests']} requests; CPU per request: app "
                  f"{r['cpu_ms_per_request_app']:.2f} ms, PostgreSQL {r['cpu_ms_per_request_postgres']:.2f} ms)")
        check_list_page(port, cookie, "/reports", counts["filer_org"])
        ratio = results["api_list"]["rps"] / results["web_list"]["rps"]
        print(f"api_list: GET /api/v1/reports {results['api_list']['rps']:.0f} req/s, GET /reports "
              f"{results['web_list']['rps']:.0f} req/s: ratio API/web {ratio:.2f} [{tool}, {args.connections} "
              f"connections, {args.workers} workers, {args.reports:,} reports]")
        fuzzed = None
        if args.fuzz_examples:
            fuzzed = fuzz(port, token, args.fuzz_examples)
            print(f"schemathesis: {fuzzed['generated']} generated requests ({args.fuzz_examples} examples per "
                  f"operation), {fuzzed['outcome']}; findings {fuzzed['findings'] or 'none'} (exit {fuzzed['exit']})")
        elapsed = time.perf_counter() - t_start
        path = write_result("api_list", {
            "reports": args.reports, "filer_org_reports": counts["filer_org"], "tool": tool,
            "connections": args.connections, "gunicorn_workers": args.workers, "seconds_per_endpoint": args.seconds,
            "endpoints": {k: {**v, "rps": round(v["rps"], 1)} for k, v in results.items()},
            "ratio_api_list_to_web_list": round(ratio, 3), "schemathesis": fuzzed, "total_seconds": round(elapsed, 1),
            "loadavg_1m_before": round(load_before, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2)})
        print(f"result appended to {path}")
        return 0
    finally:
        stop_gunicorn(proc)
        drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
