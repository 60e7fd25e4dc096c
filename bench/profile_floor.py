"""Where the signed-in floor's time goes (issue 20): cProfile over the portal's request path.

Builds a small throwaway PostgreSQL database (the filer of bench/reports_list.py, a few
reports), makes the production app in-process, signs in through the real form, then profiles
N requests of each path (default: /livez with the session cookie, and /account) through the
WSGI app, the way a gunicorn sync worker calls it (``app(environ, start_response)`` from
werkzeug's test client: no socket, everything after it the same). Prints the top entries by
cumulative and by own time and appends them to bench/results/profile_floor.txt.

    .venv/bin/python bench/profile_floor.py [URL] [--requests 2000] [--paths /livez,/account] [--label TEXT]
        [--dump PREFIX] [--trial]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, database_url, drop_database, recreate_database
from reports_list import FILER_EMAIL, PASSWORD, _commit, load_reports, prepare_field_encryption, seed_people


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--paths", default="anon:/livez,/livez,/account")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--label", default="")
    ap.add_argument("--dump", help="also write each path's raw profile to DUMP-<n>.prof (for pstats' callers)")
    ap.add_argument("--trial", action="store_true", help="print only: append nothing to bench/results")
    ap.add_argument("--plain", type=int, default=0, metavar="N",
                    help="also time N requests of each path without the profiler, calling the WSGI app directly "
                         "as a gunicorn worker does (best of 5 rounds): the figure a change is judged by")
    ap.add_argument("--wall", action="store_true",
                    help="profile wall-clock time (default: this process's CPU time, steadier on a shared machine)")
    args = ap.parse_args(argv)
    url = database_url(args.url, "ttr_bench_profile")
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-profile-"))
    created = False
    try:
        import logging
        import re

        from portal import create_app
        from portal.config import Settings
        from portal.encryption.instance import ensure_instance

        secret = os.urandom(32).hex()
        settings = Settings.from_env({}, env="production", instance_path=tmp / "instance", database_url=url,
                                     secret_key=secret)
        ensure_instance(settings)
        created = True
        recreate_database(url)
        prepare_field_encryption(settings)
        load_reports(url, seed_people(url), 500, [])
        app = create_app(settings)
        logging.disable(logging.CRITICAL)  # the JSON access log would dominate the output, not the profile
        client = app.test_client()
        html = client.get("/auth/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', html).group(1)
        r = client.post("/auth/login", data={"email": FILER_EMAIL, "password": PASSWORD, "csrf_token": token})
        if r.status_code != 302:
            raise RuntimeError(f"sign-in failed: {r.status_code}")
        out = io.StringIO()
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} commit {_commit()} "
                  f"{args.label} ({args.requests} requests each, signed in as the filer; "
                  f"{'wall-clock' if args.wall else 'CPU'} time)\n")
        anonymous = app.test_client()
        for n, path in enumerate(args.paths.split(",")):
            # "anon:/livez" is the same request without the session cookie.
            who, path = (anonymous, path[5:]) if path.startswith("anon:") else (client, path)
            for _ in range(50):  # warm: caches, prepared statements, templates
                assert who.get(path).status_code == 200, path
            prof = cProfile.Profile() if args.wall else cProfile.Profile(time.process_time)
            t0, c0 = time.perf_counter(), time.process_time()
            prof.enable()
            for _ in range(args.requests):
                who.get(path)
            prof.disable()
            if args.dump:
                prof.dump_stats(f"{args.dump}-{n}.prof")
            ms = (time.perf_counter() - t0) * 1000 / args.requests
            cpu_ms = (time.process_time() - c0) * 1000 / args.requests
            if who.get(path).status_code != 200:
                raise RuntimeError(f"GET {path}: no longer 200")
            if args.plain:
                out.write(f"\n--- GET {path}{'' if who is client else ' (no cookie)'}: "
                          "{:.1f} µs per request ({:.1f} µs CPU) without the profiler ".format(
                              *_plain_us(app, who, path, args.plain)) +
                          f"(best of 5 rounds of {args.plain})\n")
            out.write(f"\n--- GET {path}{'' if who is client else ' (no cookie)'}: {ms:.3f} ms per request under the profiler "
                      f"({cpu_ms:.3f} ms CPU)\n")
            for key in ("cumulative", "tottime"):
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats(key).print_stats(args.top)
                text = s.getvalue()
                out.write(f"[by {key}]\n" + text[text.index("   ncalls"):] if "   ncalls" in text else text)
        print(out.getvalue())
        if args.trial:
            return 0
        RESULTS.mkdir(parents=True, exist_ok=True)
        with (RESULTS / "profile_floor.txt").open("a") as f:
            f.write(out.getvalue())
        return 0
    finally:
        if created:
            drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


def _plain_us(app, client, path: str, n: int) -> float:
    """Microseconds per request (wall-clock, this process's CPU) of the app alone: one environ built as the test client builds it
    (with its cookie), then ``app(environ, start_response)`` and the body drained, n times."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path)
    environ = builder.get_environ()
    client._add_cookies_to_wsgi(environ)
    builder.close()

    def start_response(status, headers, exc_info=None):
        return None

    best = (float("inf"), float("inf"))
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            body = app(dict(environ), start_response)
            for _chunk in body:
                pass
            getattr(body, "close", lambda: None)()
        best = min(best, ((time.perf_counter() - t0) * 1e6 / n, (time.process_time() - c0) * 1e6 / n))
    return best


if __name__ == "__main__":
    sys.exit(main())
