"""Where the case page's time goes (issue 20): cProfile over GET /reports/<id> with 20 messages.

Builds a small throwaway PostgreSQL database (the people of bench/review_console.py: a
reviewer with TOTP, clearance confidential, T01-T19; its reports), gives one under-review case
exactly 20 messages in both channels (sealed bodies, a few with files on them), makes the
production app in-process, signs in as the reviewer through the real forms (password, TOTP),
then profiles N requests of the case page through the WSGI app, the way a gunicorn sync worker
calls it (werkzeug's test client: no socket, everything after it the same). Prints the SQL
statements per request and the top entries by cumulative and by own time, and appends them to
bench/results/profile_case.txt.

    .venv/bin/python bench/profile_case.py [URL] [--requests 300] [--label TEXT] [--wall] [--dump FILE] [--html PREFIX] [--statements]
    py-spy record -f raw -o case.txt -- .venv/bin/python bench/profile_case.py --sample 60
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import RESULTS, database_url, drop_database, recreate_database
from reports_list import _commit, prepare_field_encryption
from review_console import BODIES, CASE_MESSAGES, LEVELS, REVIEWER_EMAIL, PASSWORD, Totp, _csrf, load, seed_people

N_REPORTS = 200
INTERNAL_EVERY = 3  # every third message is an internal note
FILE_EVERY = 5  # every fifth message carries a file
BATCHES = 10  # unprofiled batches; the best one is reported


def seed_case(url: str, ids: dict, case_id: int) -> int:
    """CASE_MESSAGES messages on the case, alternating authors, every third one internal, at
    levels up to the case's; a clean file on every fifth. Returns how many files."""
    import psycopg

    from portal.dialogue.models import Message

    now = datetime.now(timezone.utc)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        org, classification = cur.execute("SELECT organisation_id, classification FROM reports WHERE id = %s",
                                          (case_id,)).fetchone()
        filer = ids["filers"][ids["companies"].index(org)]
        first = cur.execute("SELECT COALESCE(max(id), 0) + 1 FROM messages").fetchone()[0]
        levels = LEVELS[: LEVELS.index(classification) + 1]
        files = 0
        for n in range(CASE_MESSAGES):
            mid = first + n
            internal = n % INTERNAL_EVERY == INTERNAL_EVERY - 1
            author = ids["gov"][n % 2] if internal or n % 2 == 0 else filer
            cur.execute("INSERT INTO messages (id, report_id, channel, author_id, body, classification, is_request, "
                        "created_at, reply_to_id) VALUES (%s, %s, %s, %s, %s, %s, false, %s, %s)",
                        (mid, case_id, "internal" if internal else "external", author,
                         Message.body.seal(mid, BODIES[n % len(BODIES)] + f"（{mid}）"), levels[n % len(levels)],
                         now - timedelta(hours=CASE_MESSAGES - n), mid - 2 if n >= 2 and not internal else None))
            if n % FILE_EVERY == FILE_EVERY - 1:
                # Only the listing is measured: the file's name, size and verdict, never its bytes.
                cur.execute("INSERT INTO attachments (uid, report_id, message_id, filename, content_type, kind, size, "
                            "sha256, classification, blob_key, kek_id, wrapped_dek, uploaded_by_id, created_at, "
                            "scan_state, scanned_at) VALUES (%s, %s, %s, %s, 'application/pdf', 'message', %s, %s, "
                            "%s, %s, 'bench', %s, %s, %s, 'clean', %s)",
                            (os.urandom(16).hex(), case_id, mid, f"契約書案_{n}.pdf", 120_000 + n, "0" * 64,
                             levels[n % len(levels)], os.urandom(16).hex(), b"\0" * 40, author, now, now))
                files += 1
        cur.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))")
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM (ANALYZE)")
    return files


def sign_in(app, totp: Totp):
    client = app.test_client()
    html = client.get("/auth/login").get_data(as_text=True)
    client.post("/auth/login", data={"email": REVIEWER_EMAIL, "password": PASSWORD, "csrf_token": _csrf(html)})
    html = client.get("/auth/2fa").get_data(as_text=True)
    r = client.post("/auth/2fa", data={"code": totp.code(), "csrf_token": _csrf(html)})
    if r.status_code != 302:
        raise RuntimeError(f"sign-in failed: {r.status_code}")
    return client


def count_statements(app, client, path: str, show: bool = False) -> int:
    import sqlalchemy as sa

    engine = app.extensions["db_engine"]
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_a):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        client.get(path)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    for statement in seen if show else ():
        print(" ".join(statement.split())[:300])
    return len(seen)


def save_pages(url: str, client, path: str, user_id: int, prefix: str) -> None:
    """The page as the reviewer reads it in Japanese and in English (their account's language)."""
    import psycopg

    for lang in ("en", "ja"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE users SET locale = %s WHERE id = %s", (lang, user_id))
        Path(f"{prefix}.{lang}.html").write_text(client.get(path).get_data(as_text=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--label", default="")
    ap.add_argument("--dump", metavar="FILE", help="also write the raw profile (pstats) to FILE")
    ap.add_argument("--statements", action="store_true", help="print the SQL statements of one request")
    ap.add_argument("--html", metavar="PREFIX",
                    help="also write the page in each language to PREFIX.ja.html and PREFIX.en.html (to compare "
                         "what a change shows)")
    ap.add_argument("--wall", action="store_true",
                    help="profile wall-clock time (default: this process's CPU time, steadier on a shared machine)")
    ap.add_argument("--path", default="/reports/{case}",
                    help="another page to profile as the reviewer, e.g. '/review/queue?sort=transfer' "
                         "({case} is the case's id)")
    ap.add_argument("--trial", action="store_true", help="print only: append nothing to bench/results")
    ap.add_argument("--sample", type=float, metavar="SECONDS",
                    help="only request the page, unprofiled, for SECONDS, then stop: for a sampling "
                         "profiler outside (py-spy record -- python bench/profile_case.py --sample 60)")
    args = ap.parse_args(argv)
    url = database_url(args.url, "ttr_bench_profile_case")
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-profile-case-"))
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
        ids = seed_people(url)
        case_id = load(url, ids, N_REPORTS, 0, [])["case_id"]
        files = seed_case(url, ids, case_id)
        app = create_app(settings)
        logging.disable(logging.CRITICAL)  # the JSON access log would dominate the output, not the profile
        client = sign_in(app, Totp(ids["totp_secret"]))
        path = args.path.format(case=case_id)
        html = client.get(path).get_data(as_text=True)
        shown = len(re.findall(r'<li class="message[^"]*" id="m\d+"', html))
        if path == f"/reports/{case_id}" and shown != CASE_MESSAGES:
            raise RuntimeError(f"GET {path}: {shown} messages shown instead of {CASE_MESSAGES}")
        for _ in range(30):  # warm: caches, prepared statements, templates
            assert client.get(path).status_code == 200, path
        statements = count_statements(app, client, path, args.statements)
        if args.sample:
            end, n = time.monotonic() + args.sample, 0
            while time.monotonic() < end:
                client.get(path)
                n += 1
            print(f"GET {path}: {n} requests in {args.sample} s, {statements} SQL statements each")
            return 0
        prof = cProfile.Profile() if args.wall else cProfile.Profile(time.process_time)
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        for _ in range(args.requests):
            client.get(path)
        prof.disable()
        ms = (time.perf_counter() - t0) * 1000 / args.requests
        if args.dump:
            prof.dump_stats(args.dump)
        cpu_ms = (time.process_time() - c0) * 1000 / args.requests
        # Unprofiled: what a request costs without cProfile's own overhead; the best of the
        # batches, as other work on a shared machine only ever adds to it.
        batch = max(args.requests // BATCHES, 1)
        bare, split = [], []
        for _ in range(BATCHES):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            for _ in range(batch):
                client.get(path)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            user, system = (r1.ru_utime - r0.ru_utime) * 1000 / batch, (r1.ru_stime - r0.ru_stime) * 1000 / batch
            bare.append(user + system)
            split.append((user + system, user, system))
        bare_ms = min(bare)
        _total, user_ms, sys_ms = min(split)
        if client.get(path).status_code != 200:
            raise RuntimeError(f"GET {path}: no longer 200")
        if args.html:
            save_pages(url, client, path, ids["reviewer"], args.html)
        # Deterministic where the times are not (a shared machine): Python calls per request.
        calls = pstats.Stats(prof).total_calls // args.requests
        out = io.StringIO()
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} commit {_commit()} {args.label} "
                  f"({args.requests} requests, signed in as the reviewer; {'wall-clock' if args.wall else 'CPU'} time)\n")
        what = f" ({CASE_MESSAGES} messages, {files} files)" if path == f"/reports/{case_id}" else ""
        out.write(f"\n--- GET {path}{what}: {bare_ms:.3f} ms CPU per request "
                  f"without the profiler (best of {BATCHES} batches: user {user_ms:.3f}, system {sys_ms:.3f}; median {sorted(bare)[BATCHES // 2]:.3f}); under it {ms:.3f} ms ({cpu_ms:.3f} ms CPU); "
                  f"{statements} SQL statements and {calls} Python function calls per request\n")
        for key in ("cumulative", "tottime"):
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats(key).print_stats(args.top)
            text = s.getvalue()
            out.write(f"[by {key}]\n" + text[text.index("   ncalls"):] if "   ncalls" in text else text)
        print(out.getvalue())
        if args.trial:
            return 0
        RESULTS.mkdir(parents=True, exist_ok=True)
        with (RESULTS / "profile_case.txt").open("a") as f:
            f.write(out.getvalue())
        return 0
    finally:
        if created:
            drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
