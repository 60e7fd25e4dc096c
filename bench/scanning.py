"""Malware scanning (issue 17): scan throughput of the portal's clamd client against
`clamdscan` on the same file in the same run, and the upload rate of a 256 MiB file through
the real app (gunicorn) with scanning on and off, with the worker's peak memory.

Starts a private clamd (tests/private_clamd.py: generated configuration, socket in a temporary
folder, the project's offline signatures in clamav/, limits matching the 1 GiB upload limit).

    scan      one file of --size MiB (a PDF header, then random 1 MiB blocks each numbered, as
              bench/upload_memory.py generates) written once to a temporary file, then, best of
              --repeat runs, alternated:
                clamdscan   `clamdscan --stream` (reads the file, sends it over INSTREAM)
                portal      portal.clamd.Client.scan over the same file read in 64 KiB chunks
                            (the size the multipart parser hands UploadSink)
              ratio = clamdscan seconds / portal seconds (1.0: as fast; goal >= 0.8)
    upload    the bench/upload_memory.py set-up (temporary instance, SQLite, `portal init`, one
              sync gunicorn worker, production settings) with PORTAL_CLAMD_SOCKET set, then unset:
              POST a --size MiB file (sent 1 MiB at a time, never whole in memory), check the
              stored SHA-256 and scan state (clean with the scanner, pending without), the
              worker's peak RSS (VmHWM reset before the upload, and VmRSS sampled every 10 ms).

    .venv/bin/python bench/scanning.py [--size 256] [--repeat 3] [--deadline 900]

One JSON line is appended to bench/results/scanning.json. Everything is cleaned up afterwards.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_result
from upload_memory import (MIB, Client, Deadline, _mib, create_draft, csrf_of, file_chunks, file_sha256, free_port,
                           portal_env, portal_init, proc_status, seed, sign_in, start_gunicorn, stop_gunicorn, upload,
                           wait_ready)

from portal import clamd
from tests.private_clamd import PrivateClamd

READ_CHUNK = 64 * 1024


def write_file(path: Path, size: int, block: bytes) -> None:
    with path.open("wb") as f:
        for chunk in file_chunks(size, block):
            f.write(chunk)


def time_clamdscan(scanner: PrivateClamd, path: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(["clamdscan", "-c", str(scanner.conf), "--stream", "--no-summary", str(path)],
                         capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"clamdscan: {out.returncode} {out.stdout} {out.stderr}")
    return dt, out.stdout.strip()


def time_portal(scanner: PrivateClamd, path: Path) -> tuple[float, clamd.Verdict]:
    client = clamd.Client(scanner.socket, timeout=600)

    def chunks():
        with path.open("rb") as f:
            while data := f.read(READ_CHUNK):
                yield data

    t0 = time.perf_counter()
    verdict = client.scan(chunks())
    return time.perf_counter() - t0, verdict


def stored(db_path: Path, report_id: int) -> tuple[int, str, str]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as c:
        row = c.execute("SELECT size, sha256, scan_state FROM attachments WHERE report_id = ? ORDER BY id DESC LIMIT 1",
                        (report_id,)).fetchone()
    if row is None:
        raise RuntimeError("the upload left no attachment row")
    return row


def upload_run(tmp: Path, size: int, block: bytes, expected: str, scanner: PrivateClamd | None) -> dict:
    label = "on" if scanner else "off"
    instance = tmp / f"instance-{label}"
    log = tmp / f"server-{label}.log"
    port = free_port()
    env = portal_env(instance, port, "directory")
    if scanner is not None:
        env["PORTAL_CLAMD_SOCKET"] = scanner.socket
    portal_init(env, log)
    db_path = Path(seed(env).removeprefix("sqlite:///"))
    proc = worker = None
    try:
        proc = start_gunicorn(env, port, log)
        worker = wait_ready(port, proc, log)
        c = Client(port)
        sign_in(c)
        report_id = create_draft(c)
        status, _h, html = c.get(f"/reports/{report_id}/attachments")
        if status != 200:
            raise RuntimeError(f"GET attachments page: {status}")
        idle = proc_status(worker)["VmRSS"]
        up = upload(port, c.cookie, report_id, csrf_of(html), size, block, f"bench-scan-{label}.pdf", worker)
        stored_size, sha, state = stored(db_path, report_id)
        if stored_size != size or sha != expected:
            raise RuntimeError(f"stored {stored_size} bytes {sha}, sent {size} bytes {expected}")
        want = "clean" if scanner else "pending"
        if state != want:
            raise RuntimeError(f"scanning {label}: the file is {state}, expected {want}")
        return {**up, "scan_state": state, "worker_rss_before_kib": idle}
    except BaseException:
        if log.exists():
            print("---- server log (tail)\n" + log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        stop_gunicorn(proc, worker)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="file size in MiB")
    ap.add_argument("--repeat", type=int, default=3, help="scan runs of each kind (best is kept)")
    ap.add_argument("--deadline", type=int, default=900, help="give up (and clean up) after this many seconds")
    args = ap.parse_args(argv)
    size = args.size * MIB

    def on_signal(signum, _frame):
        raise Deadline(f"signal {signum}")

    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(args.deadline)
    if not shutil.which("clamdscan"):
        raise SystemExit("clamdscan not found: apt-get install clamav-daemon")

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-scan-"))
    scanner = None
    try:
        scanner = PrivateClamd().start()
        version = scanner.client().version()
        print(f"clamd: {version} (private, offline signatures), socket {scanner.socket}", flush=True)
        block = os.urandom(MIB)
        expected = file_sha256(size, block)
        path = tmp / "bench.pdf"
        write_file(path, size, block)
        with path.open("rb") as f:  # the page cache holds it for both sides alike
            while f.read(8 * MIB):
                pass

        tool, ours = [], []
        for n in range(args.repeat):
            dt, out = time_clamdscan(scanner, path)
            tool.append(dt)
            dt2, verdict = time_portal(scanner, path)
            ours.append(dt2)
            if not out.endswith(": OK") or verdict.state != clamd.CLEAN:
                raise RuntimeError(f"not clean: clamdscan {out!r}, portal {verdict}")
            print(f"scan run {n + 1}: clamdscan {dt:6.2f} s {size / dt / 1e6:7.1f} MB/s   "
                  f"portal client {dt2:6.2f} s {size / dt2 / 1e6:7.1f} MB/s", flush=True)
        best_tool, best_ours = min(tool), min(ours)
        ratio = round(best_tool / best_ours, 3)
        print(f"scan {args.size} MiB: clamdscan {size / best_tool / 1e6:.1f} MB/s, portal client "
              f"{size / best_ours / 1e6:.1f} MB/s: ratio {ratio} (clamdscan s / portal s; goal >= 0.8)", flush=True)
        path.unlink()

        on = upload_run(tmp, size, block, expected, scanner)
        clamd_rss = proc_status(scanner.proc.pid)["VmHWM"] if scanner.proc else None
        print(f"upload {args.size} MiB, scanning on : {on['seconds']:6.2f} s {on['mb_per_s']:7.1f} MB/s, "
              f"worker peak RSS {_mib(on['peak_rss_kib'])} MiB (sampled {_mib(on['sampled_max_rss_kib'])}); "
              f"state {on['scan_state']}", flush=True)
        off = upload_run(tmp, size, block, expected, None)
        print(f"upload {args.size} MiB, scanning off: {off['seconds']:6.2f} s {off['mb_per_s']:7.1f} MB/s, "
              f"worker peak RSS {_mib(off['peak_rss_kib'])} MiB (sampled {_mib(off['sampled_max_rss_kib'])}); "
              f"state {off['scan_state']}", flush=True)
        print(f"upload rate with scanning / without: {on['mb_per_s'] / off['mb_per_s']:.2f}; clamd's own peak RSS "
              f"{_mib(clamd_rss) if clamd_rss else '?'} MiB", flush=True)
        elapsed = round(time.perf_counter() - started, 1)
        out_path = write_result("scanning", {
            "clamd": version, "bytes": size, "read_chunk": READ_CHUNK,
            "scan": {"clamdscan_seconds": [round(t, 3) for t in tool], "portal_seconds": [round(t, 3) for t in ours],
                     "clamdscan_mb_per_s": round(size / best_tool / 1e6, 1),
                     "portal_mb_per_s": round(size / best_ours / 1e6, 1), "ratio": ratio},
            "upload_scanning_on": on, "upload_scanning_off": off,
            "upload_rate_ratio_on_off": round(on["mb_per_s"] / off["mb_per_s"], 3),
            "clamd_peak_rss_kib": clamd_rss, "database": "sqlite", "workers": 1, "total_seconds": elapsed,
        })
        print(f"total {elapsed} s; wrote {out_path}")
        return 0
    except Deadline as e:
        print(f"stopped: {e} (deadline {args.deadline} s or a signal)", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        if scanner is not None:
            scanner.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
