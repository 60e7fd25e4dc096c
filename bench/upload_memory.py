"""Peak resident memory of attachment uploads and downloads through gunicorn (issue 5).

Sets up a throwaway instance (temporary directory, SQLite, `portal init`), a company
organisation with a facility clearance and a filer cleared confidential/T01, and serves the
portal with gunicorn (one sync worker, production settings, uploads up to 2 GiB). Over HTTP on
127.0.0.1 it signs in, creates a draft prior report, then for each size (64 MiB, 256 MiB,
1 GiB by default):

    upload    POST /reports/<id>/attachments, multipart/form-data written by hand (csrf_token,
              classification=restricted, file=<generated PDF>) with a known Content-Length,
              the file generated 1 MiB at a time while it is sent (never whole in memory)
    download  GET /attachments/<id>, streamed into SHA-256 and compared with the upload

The worker's memory is read from /proc/<pid>/status: VmHWM (the kernel's peak RSS, reset
before each transfer through /proc/<pid>/clear_refs) and VmRSS sampled every 10 ms. Goal:
peak RSS under 100 MiB and flat in the file size.

    .venv/bin/python bench/upload_memory.py [--sizes 64,256,1024] [--deadline 1200]
        [--blob-store directory|database]

Everything (gunicorn, the temporary directory) is cleaned up on success, failure, Ctrl-C,
SIGTERM and when --deadline seconds have passed. One JSON line is appended to
bench/results/upload_memory.json.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Self
from urllib.parse import urlencode

from _common import ROOT, write_result

GOAL_MIB = 100
HOST = "127.0.0.1"
MIB = 1 << 20
PASSWORD = "bench: correct horse battery staple 42"
FILER_EMAIL = "filer@bench.example"
SOCKET_TIMEOUT = 300  # seconds without progress on one transfer


class Deadline(Exception):
    pass


# ---------------------------------------------------------------- /proc

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of ``pid`` in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Vm"):
                key, _, rest = line.partition(":")
                out[key] = int(rest.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: clear_refs value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(x) for x in text.split()]
    except OSError:
        pass
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


class Sampler:
    """Samples VmRSS of one process every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.pid, self.interval = pid, interval
        self.max_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = proc_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.samples += 1
            self.max_rss = max(self.max_rss, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- instance and server

def portal_env(instance: Path, port: int, blob_store: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(instance), PORTAL_ENV="production",
               PORTAL_MAX_UPLOAD_BYTES=str(2 * 1024 ** 3), PORTAL_BASE_URL=f"http://{HOST}:{port}",
               PORTAL_BLOB_STORE=blob_store)
    return env


def portal_init(env: dict[str, str], log: Path) -> None:
    exe = Path(sys.executable).parent / "portal"
    if not exe.exists():
        raise SystemExit(f"{exe} not found: run `make setup` (or pip install -e .) first")
    with log.open("ab") as out:
        subprocess.run([str(exe), "init"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                       check=True, timeout=120)


def seed(env: dict[str, str]) -> str:
    """A company organisation with a facility clearance and a filer (confidential, T01),
    written straight into the instance database; returns the database URL."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    import portal.models  # noqa: F401 - every mapper, so relationships resolve
    from portal.encryption import sealed
    from portal.access.models import Clearance
    from portal.encryption.opener import keyring_for
    from portal.auth.models import User
    from portal.auth.passwords import Argon2Params, hash_password
    from portal.catalogue.models import Technology
    from portal.config import Settings
    from portal.db import make_engine
    from portal.orgs.corporate_number import check_digit
    from portal.orgs.models import Organisation

    settings = Settings.from_env(env)
    sealed.configure(keyring_for(settings.keyring_path), settings.database_url)
    engine = make_engine(settings.database_url)
    today = date.today()
    base = "900000005001"
    try:
        with Session(engine) as s, s.begin():
            org = Organisation(name="株式会社ベンチ電子", corporate_number=f"{check_digit(base)}{base}",
                               address="東京都千代田区", facility_clearance_from=today - timedelta(days=30),
                               facility_clearance_until=today + timedelta(days=365))
            s.add(org)
            s.flush()
            # Argon2Params() are the production defaults, so sign-in does not re-hash.
            u = User(email=FILER_EMAIL, name="ベンチ 申請者", role="filer", organisation_id=org.id, locale="ja",
                     password_hash=hash_password(PASSWORD, Argon2Params()))
            s.add(u)
            s.flush()
            t01 = s.execute(select(Technology).where(Technology.code == "T01")).scalar_one()
            s.add(Clearance(user_id=u.id, level="confidential", expires_on=today + timedelta(days=3650),
                            reason="benchmark", compartments=[t01]))
    finally:
        engine.dispose()
    return settings.database_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"{HOST}:{port}", "wsgi:app"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_gunicorn(proc: subprocess.Popen | None, worker: int | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # graceful stop; the master stops its worker
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if worker is not None:
        try:  # only the worker this run started, by its id, and only if it outlived the master
            if os.getpgid(worker) == proc.pid:
                os.kill(worker, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> int:
    """Wait for /livez and return the worker's pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if request(port, "GET", "/livez", timeout=2)[0] == 200:
                kids = children_of(proc.pid)
                if len(kids) == 1:
                    return kids[0]
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------- HTTP

class Client:
    def __init__(self, port: int):
        self.port = port
        self.cookie: str | None = None

    def _update_cookie(self, headers: list[str]) -> None:
        for line in headers:
            m = re.match(r"ttr_session=([^;]*)", line)
            if m:
                self.cookie = f"ttr_session={m.group(1)}"

    def get(self, path: str) -> tuple[int, dict, str]:
        status, headers, body = request(self.port, "GET", path, cookie=self.cookie)
        self._update_cookie(headers["set-cookie-all"])
        return status, headers, body

    def post_form(self, path: str, data: dict) -> tuple[int, dict, str]:
        status, headers, body = request(self.port, "POST", path, cookie=self.cookie, body=urlencode(data))
        self._update_cookie(headers["set-cookie-all"])
        return status, headers, body


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


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token on the page")
    return m.group(1)


def sign_in(c: Client) -> None:
    status, _h, html = c.get("/auth/login")
    if status != 200:
        raise RuntimeError(f"GET /auth/login: {status}")
    status, headers, text = c.post_form("/auth/login", {"email": FILER_EMAIL, "password": PASSWORD,
                                                        "csrf_token": csrf_of(html)})
    if status != 302 or not c.cookie:
        raise RuntimeError(f"sign-in failed: {status} {text[:500]}")


def create_draft(c: Client) -> int:
    status, _h, html = c.get("/reports")
    if status != 200:
        raise RuntimeError(f"GET /reports: {status}")
    status, headers, text = c.post_form("/reports/new", {"csrf_token": csrf_of(html)})
    m = re.search(r"/reports/(\d+)/", headers.get("location", ""))
    if status != 302 or not m:
        raise RuntimeError(f"POST /reports/new: {status} {headers.get('location')} {text[:500]}")
    return int(m.group(1))


# ---------------------------------------------------------------- the file

def file_chunks(size: int, block: bytes):
    """A PDF-looking file of ``size`` bytes, 1 MiB at a time: the random block with the chunk
    number in its first 8 bytes (every MiB differs), the first starting with %PDF-1.7."""
    k = 0
    sent = 0
    while sent < size:
        n = min(len(block), size - sent)
        chunk = (b"%PDF-1.7\n" + block[9:n]) if k == 0 else (k.to_bytes(8, "big") + block[8:n])
        yield chunk[:n]
        sent += n
        k += 1


def file_sha256(size: int, block: bytes) -> str:
    h = hashlib.sha256()
    for chunk in file_chunks(size, block):
        h.update(chunk)
    return h.hexdigest()


def upload(port: int, cookie: str, report_id: int, token: str, size: int, block: bytes, filename: str,
           pid: int) -> dict:
    boundary = "ttrbench" + secrets.token_hex(20)
    assert ("--" + boundary).encode() not in block
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="classification"\r\n\r\nrestricted\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f'Content-Type: application/pdf\r\n\r\n').encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + size + len(tail)
    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT)
    send_error = None
    reset_ok = reset_peak(pid)
    with Sampler(pid) as sampler:
        t0 = time.perf_counter()
        try:
            conn.putrequest("POST", f"/reports/{report_id}/attachments")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(length))
            conn.putheader("Cookie", cookie)
            conn.endheaders()
            conn.send(head)
            for chunk in file_chunks(size, block):
                conn.send(chunk)
            conn.send(tail)
        except (BrokenPipeError, ConnectionResetError) as e:  # the server answered early
            send_error = repr(e)
        try:
            resp = conn.getresponse()
            status, location = resp.status, resp.getheader("Location", "")
            text = resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            status, location, text = None, "", repr(e)
        dt = time.perf_counter() - t0
    conn.close()
    st = proc_status(pid)
    ok = status == 302 and f"/reports/{report_id}/attachments" in location
    if not ok:
        raise RuntimeError(f"upload of {size} bytes failed: {status} {send_error or ''} {text[:1500]}")
    return {"seconds": round(dt, 3), "mb_per_s": round(size / dt / 1e6, 1),
            "peak_rss_kib": max(st["VmHWM"], sampler.max_rss) if reset_ok else sampler.max_rss,
            "vmhwm_kib": st["VmHWM"], "sampled_max_rss_kib": sampler.max_rss, "samples": sampler.samples,
            "rss_after_kib": st["VmRSS"], "peak_reset": reset_ok}


def download(port: int, cookie: str, attachment_id: int, size: int, pid: int) -> tuple[dict, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT)
    reset_ok = reset_peak(pid)
    h = hashlib.sha256()
    n = 0
    with Sampler(pid) as sampler:
        t0 = time.perf_counter()
        conn.request("GET", f"/attachments/{attachment_id}", headers={"Cookie": cookie})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"download {attachment_id}: {resp.status} {resp.read()[:500]!r}")
        declared = int(resp.getheader("Content-Length", "-1"))
        while chunk := resp.read(MIB):
            h.update(chunk)
            n += len(chunk)
        dt = time.perf_counter() - t0
    conn.close()
    st = proc_status(pid)
    if n != size or declared != size:
        raise RuntimeError(f"download {attachment_id}: {n} bytes read, Content-Length {declared}, expected {size}")
    return ({"seconds": round(dt, 3), "mb_per_s": round(size / dt / 1e6, 1),
             "peak_rss_kib": max(st["VmHWM"], sampler.max_rss) if reset_ok else sampler.max_rss,
             "vmhwm_kib": st["VmHWM"], "sampled_max_rss_kib": sampler.max_rss, "samples": sampler.samples,
             "rss_after_kib": st["VmRSS"], "peak_reset": reset_ok}, h.hexdigest())


def stored_attachment(db_path: Path, report_id: int) -> tuple[int, int, str, str]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as c:
        row = c.execute("SELECT id, size, sha256, blob_key FROM attachments WHERE report_id = ? "
                        "ORDER BY id DESC LIMIT 1", (report_id,)).fetchone()
    if row is None:
        raise RuntimeError("the upload left no attachment row")
    return row


# ---------------------------------------------------------------- main

def _mib(kib: int | None) -> float:
    return round(kib / 1024, 1) if kib is not None else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,256,1024", help="file sizes in MiB, comma-separated")
    ap.add_argument("--deadline", type=int, default=1200, help="give up (and clean up) after this many seconds")
    ap.add_argument("--blob-store", choices=("directory", "database"), default="directory")
    args = ap.parse_args(argv)
    sizes = [int(s) * MIB for s in args.sizes.split(",")]

    def on_signal(signum, _frame):
        raise Deadline(f"signal {signum}")

    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(args.deadline)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-upload-"))
    instance = tmp / "instance"
    log = tmp / "server.log"
    proc = None
    worker = None
    try:
        port = free_port()
        env = portal_env(instance, port, args.blob_store)
        portal_init(env, log)
        url = seed(env)
        db_path = Path(url.removeprefix("sqlite:///"))
        proc = start_gunicorn(env, port, log)
        worker = wait_ready(port, proc, log)
        idle = proc_status(worker)
        print(f"gunicorn master {proc.pid}, worker {worker}: idle RSS {_mib(idle['VmRSS'])} MiB", flush=True)

        c = Client(port)
        sign_in(c)
        report_id = create_draft(c)
        signed = proc_status(worker)
        print(f"signed in, draft {report_id}: RSS {_mib(signed['VmRSS'])} MiB, "
              f"peak so far {_mib(signed['VmHWM'])} MiB (includes Argon2id's 19 MiB at sign-in)", flush=True)

        block = os.urandom(MIB)
        runs = []
        for size in sizes:
            label = f"{size // MIB} MiB"
            expected = file_sha256(size, block)
            status, _h, html = c.get(f"/reports/{report_id}/attachments")
            if status != 200:
                raise RuntimeError(f"GET attachments page: {status}")
            up = upload(port, c.cookie, report_id, csrf_of(html), size, block, f"bench-{size // MIB}MiB.pdf",
                        worker)
            att_id, stored_size, stored_sha, blob_key = stored_attachment(db_path, report_id)
            if stored_size != size or stored_sha != expected:
                raise RuntimeError(f"stored {stored_size} bytes {stored_sha}, sent {size} bytes {expected}")
            print(f"upload   {label:>9}: {up['seconds']:7.2f} s {up['mb_per_s']:7.1f} MB/s  "
                  f"peak RSS {_mib(up['peak_rss_kib'])} MiB (sampled {_mib(up['sampled_max_rss_kib'])}), "
                  f"after {_mib(up['rss_after_kib'])} MiB", flush=True)
            down, got = download(port, c.cookie, att_id, size, worker)
            if got != expected:
                raise RuntimeError(f"download SHA-256 {got} != upload {expected}")
            print(f"download {label:>9}: {down['seconds']:7.2f} s {down['mb_per_s']:7.1f} MB/s  "
                  f"peak RSS {_mib(down['peak_rss_kib'])} MiB (sampled {_mib(down['sampled_max_rss_kib'])}), "
                  f"after {_mib(down['rss_after_kib'])} MiB; SHA-256 matches", flush=True)
            now = children_of(proc.pid)
            if now != [worker]:
                raise RuntimeError(f"the worker changed during the run ({worker} -> {now}): "
                                   f"{log.read_text()[-2000:]}")
            runs.append({"bytes": size, "sha256_ok": True, "upload": up, "download": down})

        peaks = [max(r["upload"]["peak_rss_kib"], r["download"]["peak_rss_kib"]) for r in runs]
        growth = _mib(peaks[-1] - peaks[0])
        goal_met = max(peaks) < GOAL_MIB * 1024
        elapsed = time.perf_counter() - started
        for r, p in zip(runs, peaks):
            print(f"peak RSS {r['bytes'] // MIB:>5} MiB file: {_mib(p)} MiB")
        print(f"goal: peak < {GOAL_MIB} MiB: {'met' if goal_met else 'NOT met'}; growth from "
              f"{sizes[0] // MIB} MiB to {sizes[-1] // MIB} MiB: {growth} MiB; total {elapsed:.1f} s")
        path = write_result("upload_memory", {
            "blob_store": args.blob_store, "database": "sqlite", "workers": 1,
            "worker_idle_rss_kib": idle["VmRSS"], "worker_after_signin_rss_kib": signed["VmRSS"],
            "worker_after_signin_hwm_kib": signed["VmHWM"], "runs": runs,
            "peak_rss_kib_by_size": {str(r["bytes"]): p for r, p in zip(runs, peaks)},
            "growth_first_to_last_mib": growth, "goal_mib": GOAL_MIB, "goal_met": goal_met,
            "total_seconds": round(elapsed, 1),
        })
        print(f"wrote {path}")
        return 0
    except Deadline as e:
        print(f"stopped: {e} (deadline {args.deadline} s or a signal)", file=sys.stderr)
        return 2
    except BaseException:
        signal.alarm(0)
        if log.exists():
            print("---- server log (tail)\n" + log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        signal.alarm(0)
        stop_gunicorn(proc, worker)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
