"""``verify_chain`` events per second over 1,000,000 events on PostgreSQL (issue 3).

Builds a valid chain in Python with the portal's own hashing, COPYs it in (the append-only
trigger is switched off inside the loading transaction only, so nobody ever sees it off), then
times ``portal.audit.verify.verify_chain`` as ``portal audit verify`` runs it. Finally it
edits one event and checks that verify names it. Goal: >= 300,000 events/s.

    .venv/bin/python bench/audit_verify.py [URL] [--events 1000000] [--keep] [--reuse]

URL defaults to $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/ttr_bench_verify;
that database is dropped and created afresh (kept with --keep; --reuse skips the load when it
already holds exactly --events events).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _common import database_url, drop_database, recreate_database, write_result

GOAL = 300_000
ACTIONS = ["auth.signin", "case.read", "case.download", "report.submit", "clearance.grant", "access.denied"]
ROLES = ["filer", "org_admin", "reviewer", "approver", "auditor", "security_officer", "admin"]
COLUMNS = ("seq", "occurred_at", "actor_id", "actor_email", "actor_role", "org_id", "source_ip", "action",
           "target_type", "target_id", "case_ref", "outcome", "reason", "details", "prev_hash", "hash")


def generate(n: int):
    """Yield rows (COLUMNS order) of a valid chain, hashed as record() does (the first rows are
    checked against portal.audit.trail.compute_hash; verify_chain checks them all)."""
    import hashlib
    from json.encoder import c_encode_basestring, c_make_encoder

    from portal.audit.trail import GENESIS, HASHED_FIELDS, compute_hash

    assert COLUMNS[:14] == HASHED_FIELDS
    encode = c_make_encoder(None, None, c_encode_basestring, None, ":", ",", False, False, True)
    sha256 = hashlib.sha256
    prev = GENESIS
    for seq in range(1, n + 1):
        sec, us = divmod(seq * 1733, 1_000_000)  # 2025-04-01, one event every 1.733 ms
        ts = f"2025-04-01T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{us:06d}Z"
        a = seq % 97
        action = ACTIONS[seq % len(ACTIONS)]
        outcome = "denied" if action == "access.denied" else ("failure" if seq % 53 == 0 else "success")
        values = [
            seq, ts, 1000 + a, f"user{a}@example.co.jp", ROLES[a % len(ROLES)], 10 + a % 13,
            f"192.0.2.{a}", action, "report", str(seq // 3), f"R-2025-{seq // 7:06d}", outcome,
            "clearance" if outcome == "denied" else None, f'{{"n":{seq},"via":"web"}}',
        ]
        digest = sha256((prev + "\n" + "".join(encode(values, 0))).encode("utf-8")).hexdigest()
        if seq <= 3:
            assert digest == compute_hash(prev, tuple(values))
        yield (*values, prev, digest)
        prev = digest


def load(url: str, n: int) -> float:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            # COPY does not fire the UPDATE/DELETE/TRUNCATE triggers; they are switched off for the
            # load all the same and back on before this transaction commits.
            cur.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            with cur.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in generate(n):
                    copy.write_row(row)
            cur.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
        conn.commit()
        with conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("VACUUM ANALYZE audit_events")
    return time.perf_counter() - t0


def count(url: str) -> int:
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    except psycopg.Error:
        return -1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="timed verify runs; the best is reported")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args(argv)
    url = database_url(args.url, "ttr_bench_verify")

    try:
        if args.reuse and count(url) == args.events:
            load_s = None
            print(f"reusing {args.events:,} events in {url.rsplit('/', 1)[1]}")
        else:
            recreate_database(url)
            load_s = load(url, args.events)
            print(f"loaded {args.events:,} events in {load_s:.1f} s ({args.events / load_s:,.0f}/s)")

        from sqlalchemy import text

        from portal.audit.verify import verify_chain
        from portal.db import make_engine

        load_before = os.getloadavg()[0]  # other work on this machine skews the numbers
        engine = make_engine(url)
        times = []
        for _ in range(args.runs):
            with engine.connect() as conn:
                t0 = time.perf_counter()
                result = verify_chain(conn)
                times.append(time.perf_counter() - t0)
            assert result.ok, f"chain broken at {result.first_bad_seq}: {result.problem}"
            assert result.count == args.events == result.head_seq
        best = min(times)
        rate = args.events / best

        # Correctness at scale: one edited event deep in the chain is named.
        victim = args.events * 3 // 4 + 1
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            conn.execute(text("UPDATE audit_events SET actor_email = 'x' || actor_email WHERE seq = :s"), {"s": victim})
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        with engine.connect() as conn:
            t0 = time.perf_counter()
            broken = verify_chain(conn)
            broken_s = time.perf_counter() - t0
        assert not broken.ok and broken.first_bad_seq == victim, (broken.first_bad_seq, victim)
        with engine.begin() as conn:  # put it back, so that --keep leaves a valid chain for --reuse
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            conn.execute(text("UPDATE audit_events SET actor_email = substr(actor_email, 2) WHERE seq = :s"), {"s": victim})
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        engine.dispose()

    finally:
        if not args.keep:
            drop_database(url)

    ok = rate >= GOAL
    print(f"audit_verify: {rate:,.0f} events/s ({args.events:,} events verified in {best:.2f} s, best of "
          f"{args.runs}: {', '.join(f'{t:.2f}' for t in times)} s); edited event {victim} named in "
          f"{broken_s:.2f} s; goal {GOAL:,}/s {'met' if ok else 'NOT met'} "
          f"(load average before {load_before:.1f} on {os.cpu_count()} CPUs)")
    path = write_result("audit_verify", {
        "events_per_s": round(rate, 1), "events": args.events, "seconds_best": round(best, 3),
        "seconds_runs": [round(t, 3) for t in times], "load_seconds": None if load_s is None else round(load_s, 1),
        "tamper_detected_at": broken.first_bad_seq, "goal_per_s": GOAL, "goal_met": ok,
        "loadavg_1min_before": round(load_before, 2),
    })
    print(f"result appended to {path}")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
