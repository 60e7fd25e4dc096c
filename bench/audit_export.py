"""Audit-trail exports of 100,000 / 300,000 / 1,000,000 events on PostgreSQL, and the offline
verifier over the 1,000,000-event files (issue 8): events per second and peak memory.

Goal: the exporter's peak memory is flat in the size of the export (about the same at 100k and
1M). The chain is built in Python and COPYed in by bench/audit_verify.py's generator (valid,
hashed as ``record`` does), loaded incrementally: 100,000 events, export, 200,000 more, export,
700,000 more, export. Each export is ``portal.audit.export.stream(engine, Filter(), fmt,
key=..., exporter="bench", checkpoint=None)`` into a temporary file, run in a fresh child
process so that its peak RSS (the kernel's VmHWM, read by the child when it is done) belongs
to that run alone. Then ``crypto.audit_verify.verify_export`` checks each 1M file, again in a
child process that imports only ``crypto.audit_verify``.

    .venv/bin/python bench/audit_export.py [URL] [--sizes 100000,300000,1000000] [--runs 1]

URL defaults to $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/ttr_bench_export;
that database is dropped and created afresh and dropped again at the end (also after an error
or Ctrl-C), and the temporary directory (key and export files) is removed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve()
FLAT_MIB = 5.0


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


# --- children ------------------------------------------------------------------------------------
# Each prints one JSON line on stdout. "base" is VmRSS after the imports and set-up, just before
# the timed work; "hwm" is VmHWM (peak RSS of the whole process) when it is done.

def child_export(url: str, fmt: str, key_path: str, out_path: str, batch: int) -> None:
    sys.path.insert(0, str(HERE.parent.parent))
    from crypto import SigningKey
    from portal.audit.export import Filter, stream
    from portal.db import make_engine

    key = SigningKey.load(key_path)
    engine = make_engine(url)
    with engine.connect() as c:  # the pool's first connection and the dialect's start-up queries
        c.exec_driver_sql("SELECT 1")
    base = _proc_status_kib("VmRSS")
    t0 = time.perf_counter()
    size = 0
    with open(out_path, "wb") as out:
        for chunk in stream(engine, Filter(), fmt, key=key, exporter="bench", checkpoint=None, batch=batch):
            out.write(chunk)
            size += len(chunk)
    seconds = time.perf_counter() - t0
    engine.dispose()
    print(json.dumps({"seconds": seconds, "bytes": size, "base_kib": base, "hwm_kib": _proc_status_kib("VmHWM")}))


def child_verify(path: str, pem_path: str) -> None:
    sys.path.insert(0, str(HERE.parent.parent))
    from crypto.audit_verify import verify_export

    pem = Path(pem_path).read_bytes()
    base = _proc_status_kib("VmRSS")
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        result = verify_export(f, pem)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "ok": result.ok, "problem": result.problem, "count": result.count,
                      "base_kib": base, "hwm_kib": _proc_status_kib("VmHWM")}))


def run_child(*args: str) -> dict:
    """Run this script as a fresh child process and return its JSON line. (Its peak is VmHWM read
    by the child itself: wait4's ru_maxrss is no good here, because Linux carries the forking
    parent's RSS across exec into the child's ru_maxrss, and this parent is larger than a verifier.)"""
    proc = subprocess.run([sys.executable, str(HERE), "--child", *args], stdout=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed with status {proc.returncode}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


# --- loading -------------------------------------------------------------------------------------

def load_more(url: str, rows) -> int:
    """COPY the next rows of bench/audit_verify.py's chain (as its load() does), then VACUUM ANALYZE."""
    import psycopg

    from audit_verify import COLUMNS

    n = 0
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            with cur.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
            cur.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_events")
    return n


def _manifest(path: str, fmt: str) -> dict:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 65536))
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
    if fmt == "csv":
        last = last.split(" ", 1)[1]
    return json.loads(last)["manifest"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        kind, rest = argv[1], argv[2:]
        if kind == "export":
            child_export(rest[0], rest[1], rest[2], rest[3], int(rest[4]))
        else:
            child_verify(rest[0], rest[1])
        return 0

    from _common import database_url, drop_database, recreate_database, write_result

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--sizes", default="100000,300000,1000000", help="export sizes, ascending (events)")
    ap.add_argument("--formats", default="csv,jsonl")
    ap.add_argument("--runs", type=int, default=1, help="timed runs per size and format (best time, highest peak)")
    ap.add_argument("--batch", type=int, default=5000, help="stream()'s batch size")
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    formats = args.formats.split(",")
    url = database_url(args.url, "ttr_bench_export")

    from audit_verify import generate

    # Ctrl-C and SIGTERM both end in the finally below.
    def _terminate(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-export-"))
    results: dict = {"exports": [], "verify": []}
    try:
        from crypto import SigningKey

        key = SigningKey.create(tmp / "audit-signing.pem")
        (tmp / "audit-public.pem").write_bytes(key.public_key_pem())

        recreate_database(url)
        load_before = os.getloadavg()[0]
        chain = generate(sizes[-1])
        loaded, load_s = 0, 0.0
        files: dict[str, Path] = {}
        for size in sizes:
            t0 = time.perf_counter()
            loaded += load_more(url, islice(chain, size - loaded))
            load_s += time.perf_counter() - t0
            assert loaded == size, (loaded, size)
            print(f"loaded {loaded:,} events ({load_s:.1f} s so far)", flush=True)
            for fmt in formats:
                path = tmp / f"export-{size}.{fmt}"
                runs = [run_child("export", url, fmt, str(tmp / "audit-signing.pem"), str(path), str(args.batch))
                        for _ in range(args.runs)]
                m = _manifest(str(path), fmt)
                assert m["count"] == size and m["first_seq"] == 1 and m["last_seq"] == size, m
                best = min(r["seconds"] for r in runs)
                hwm = max(r["hwm_kib"] for r in runs)
                row = {"format": fmt, "events": size, "seconds": round(best, 3),
                       "events_per_s": round(size / best, 1), "bytes": runs[0]["bytes"],
                       "peak_rss_mib": round(hwm / 1024, 1),
                       "rss_before_mib": round(runs[0]["base_kib"] / 1024, 1),
                       "seconds_runs": [round(r["seconds"], 3) for r in runs]}
                results["exports"].append(row)
                print(f"export {fmt:5} {size:>9,} events: {row['events_per_s']:>9,.0f} events/s "
                      f"({best:.2f} s, {row['bytes'] / 1e6:,.0f} MB); peak RSS {row['peak_rss_mib']:.1f} MiB "
                      f"({row['rss_before_mib']:.1f} MiB before the export)",
                      flush=True)
                if size == sizes[-1]:
                    files[fmt] = path
                else:
                    path.unlink()

        for fmt, path in files.items():
            runs = [run_child("verify", str(path), str(tmp / "audit-public.pem")) for _ in range(args.runs)]
            for r in runs:
                assert r["ok"] and r["count"] == sizes[-1], r
            best = min(r["seconds"] for r in runs)
            row = {"format": fmt, "events": sizes[-1], "seconds": round(best, 3),
                   "events_per_s": round(sizes[-1] / best, 1), "bytes": path.stat().st_size,
                   "peak_rss_mib": round(max(r["hwm_kib"] for r in runs) / 1024, 1),
                   "rss_before_mib": round(runs[0]["base_kib"] / 1024, 1),
                   "seconds_runs": [round(r["seconds"], 3) for r in runs]}
            results["verify"].append(row)
            print(f"verify {fmt:5} {sizes[-1]:>9,} events: {row['events_per_s']:>9,.0f} events/s "
                  f"({best:.2f} s); peak RSS {row['peak_rss_mib']:.1f} MiB "
                  f"({row['rss_before_mib']:.1f} MiB before)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            drop_database(url)
        except Exception as exc:  # noqa: BLE001 - report, but do not hide the original error
            print(f"could not drop the benchmark database: {exc}", file=sys.stderr)

    # Flat memory: the peak at the largest size at most 5 MiB above the smallest's, per format
    # (allocator noise is 1-3 MiB; keeping even 6 bytes per event would add more at 10x the events).
    flat = {}
    for fmt in formats:
        peaks = {r["events"]: r["peak_rss_mib"] for r in results["exports"] if r["format"] == fmt}
        growth = peaks[sizes[-1]] - peaks[sizes[0]]
        flat[fmt] = {"growth_mib": round(growth, 1), "flat": growth <= FLAT_MIB}
        print(f"memory {fmt:5}: peak {peaks[sizes[0]]:.1f} MiB at {sizes[0]:,} -> {peaks[sizes[-1]]:.1f} MiB at "
              f"{sizes[-1]:,} ({growth:+.1f} MiB): {'flat' if flat[fmt]['flat'] else 'NOT flat'}")
    path = write_result("audit_export", {
        "label": args.label, "sizes": sizes, "batch": args.batch, "runs": args.runs,
        "load_seconds": round(load_s, 1), "loadavg_1min_before": round(load_before, 2),
        **results, "memory_flat": flat,
    })
    print(f"result appended to {path} (load average before {load_before:.1f} on {os.cpu_count()} CPUs)")
    return 0 if all(v["flat"] for v in flat.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
