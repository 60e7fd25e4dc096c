"""Audit appends per second from concurrent writer processes on PostgreSQL (issue 3).

Each writer is its own process with its own engine and appends through
``portal.audit.trail.record``, one event per transaction, as a request handler would. At the
end the whole chain is verified. Goal: >= 1,000 appends/s with 8 writers.

    .venv/bin/python bench/audit_append.py [URL] [--writers 8] [--seconds 10] [--count N] [--keep]

URL defaults to $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/ttr_bench; that
database is dropped and created afresh (and dropped again unless --keep).
"""
from __future__ import annotations

import argparse
import os
import multiprocessing as mp
import sys
import time

from _common import database_url, drop_database, recreate_database, write_result

GOAL = 1000


def writer(url: str, index: int, seconds: float, count: int | None, barrier, out) -> None:
    from sqlalchemy.orm import sessionmaker

    from portal.audit.trail import Actor, record
    from portal.db import make_engine

    engine = make_engine(url, pool_size=1)
    Session = sessionmaker(engine, expire_on_commit=False)
    actor = Actor(1000 + index, f"writer{index}@bench.example", "filer", 1)
    with Session() as s, s.begin():  # warm the connection and the statement cache
        s.connection()
    latencies = []
    barrier.wait()
    start = time.perf_counter()
    deadline = start + seconds
    n = 0
    while (n < count) if count else (time.perf_counter() < deadline):
        t0 = time.perf_counter()
        with Session() as s, s.begin():
            record(s, "case.read", actor=actor, target_type="report", target_id=n, case_ref=f"R-2025-{n:05d}",
                   source_ip="192.0.2.10", details={"writer": index, "n": n})
        latencies.append(time.perf_counter() - t0)
        n += 1
    out.put((index, n, start, time.perf_counter(), sorted(latencies)))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=None, help="events per writer (instead of --seconds)")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args(argv)
    url = database_url(args.url)

    procs = []
    try:
        load_before = os.getloadavg()[0]  # other work on this machine skews the numbers
        recreate_database(url)
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(args.writers + 1)
        out = ctx.Queue()
        procs = [ctx.Process(target=writer, args=(url, i, args.seconds, args.count, barrier, out))
                 for i in range(args.writers)]
        for p in procs:
            p.start()
        barrier.wait()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            print("a writer failed", file=sys.stderr)
            return 1

        total = sum(r[1] for r in results)
        elapsed = max(r[3] for r in results) - min(r[2] for r in results)
        rate = total / elapsed
        lat = sorted(x for r in results for x in r[4])
        p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000

        from portal.audit.verify import verify_chain
        from portal.db import make_engine

        engine = make_engine(url)
        t0 = time.perf_counter()
        with engine.connect() as conn:
            verified = verify_chain(conn)
        verify_s = time.perf_counter() - t0
        engine.dispose()
        assert verified.ok, f"chain broken at {verified.first_bad_seq}: {verified.problem}"
        assert verified.count == total == verified.head_seq, (verified.count, total)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if not args.keep:
            drop_database(url)

    ok = rate >= GOAL
    print(f"audit_append: {rate:,.0f} appends/s ({total} events, {args.writers} writer processes, "
          f"{elapsed:.1f} s, p50 {p50:.2f} ms, p99 {p99:.2f} ms); chain verified ok in {verify_s:.2f} s; "
          f"goal {GOAL:,}/s {'met' if ok else 'NOT met'} "
          f"(load average before {load_before:.1f} on {os.cpu_count()} CPUs)")
    path = write_result("audit_append", {
        "appends_per_s": round(rate, 1), "events": total, "writers": args.writers, "seconds": round(elapsed, 3),
        "latency_ms_p50": round(p50, 3), "latency_ms_p99": round(p99, 3), "verified": True,
        "goal_per_s": GOAL, "goal_met": ok, "loadavg_1min_before": round(load_before, 2),
    })
    print(f"result appended to {path}")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
