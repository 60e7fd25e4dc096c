"""How many deliberately slow clients the default serving settings survive while a normal page
stays under 1 s (issue 14, "Measure and report"; bench/README.md "slow_clients.py").

Starts gunicorn with the project's configuration (portal/serving/gunicorn_conf.py, defaults:
2 workers x 16 threads) on a temporary SQLite instance and a free 127.0.0.1 port, then ramps:

* heads:  slowloris connections that send a request head one byte a second (reconnecting the
          ones the server closes, as an attacker would);
* bodies: POSTs that declare 1 MB and send it at 8 KiB/s, above the minimum rate, so the
          server must keep them (a slow upload looks the same);

and at every step times ``--pages`` loads of /auth/login. A step passes when the slowest load is
under 1 s. ``--compare`` runs the heads ramp again against stock gthread (``-k gthread``, same
threads) for reference. ``--transfer MiB`` also uploads and downloads a file of that size at
``--rate`` Mbit/s (default 10, the company link DESIGN §9 names) and reports the worker's peak
RSS. Everything it starts is stopped on exit; every loop is bounded in count and time.
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import write_result

PY = sys.executable
PORTAL = Path(PY).parent / "portal"
HEAD = b"GET /auth/login HTTP/1.1\r\nHost: portal\r\nX-Slow: "
BODY = (b"POST /auth/login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000000\r\n\r\nemail=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict, workdir: Path, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.log = workdir / f"gunicorn-{self.port}.log"
        self.proc = subprocess.Popen([PY, "-m", "gunicorn", "-c", "python:portal.serving.gunicorn_conf",
                                      "--bind", f"127.0.0.1:{self.port}", *args, "portal:create_app()"],
                                     env=env, cwd=workdir, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if page_seconds(self.port, timeout=2) < 5:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"gunicorn did not start:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def page_seconds(port: int, timeout: float = 10) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/auth/login")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise OSError(f"status {resp.status}")
    finally:
        conn.close()
    return time.monotonic() - started


def worst_page(port: int, pages: int) -> float:
    worst = 0.0
    for _ in range(pages):
        try:
            worst = max(worst, page_seconds(port, timeout=5))
        except OSError:
            return float("inf")
        time.sleep(0.1)
    return worst


class Crowd:
    """``n`` slow connections kept open: closed ones are replaced, each gets a byte per tick."""

    def __init__(self, port: int, first: bytes, drip: bytes):
        self.port, self.first, self.drip = port, first, drip
        self.socks: list[socket.socket] = []
        self.replaced = 0

    def grow(self, n: int) -> None:
        while len(self.socks) < n:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(self.first)
                s.setblocking(False)
                self.socks.append(s)
            except OSError:
                break

    def tick(self) -> None:
        alive = []
        for s in self.socks:
            try:
                s.send(self.drip)
                try:
                    if s.recv(4096) == b"":
                        raise OSError("closed")
                except BlockingIOError:
                    pass
                alive.append(s)
            except OSError:
                s.close()
                self.replaced += 1
        n = len(self.socks)
        self.socks = alive
        self.grow(n)

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []


def ramp(port: int, first: bytes, drip: bytes, steps: list[int], pages: int, tick: float, settle: float,
         label: str, fresh: bool) -> tuple[int, list[dict]]:
    survived, rows = 0, []
    crowd = Crowd(port, first, drip)
    try:
        for n in steps:
            if fresh:
                crowd.close()
            crowd.grow(n)
            until = time.monotonic() + settle
            while time.monotonic() < until:
                crowd.tick()
                time.sleep(tick)
            worst = worst_page(port, pages)
            crowd.tick()
            rows.append({"clients": len(crowd.socks), "worst_page_s": round(worst, 3), "replaced": crowd.replaced})
            print(f"{label:>14}: {len(crowd.socks):5d} slow clients, slowest page "
                  f"{'timeout' if worst == float('inf') else f'{worst:.3f} s'}", flush=True)
            if worst >= 1:
                break
            survived = len(crowd.socks)
    finally:
        crowd.close()
    return survived, rows


def rss_peak(pids: list[int]) -> float:
    peak = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        if m:
            peak = max(peak, int(m.group(1)))
    return peak / 1024


def transfer(server: Server, env: dict, mib: int, mbit: float) -> dict:
    """Sign in, upload and download ``mib`` MiB at ``mbit`` Mbit/s; both byte-checked."""
    rate = int(mbit * 1_000_000 / 8)
    port = server.port
    cookies: dict[str, str] = {}

    def req(method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        h = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), **(headers or {})}
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        for c in r.headers.get_all("Set-Cookie") or []:
            k, _, v = c.split(";")[0].partition("=")
            cookies[k.strip()] = v
        conn.close()
        return r, data

    def token(path):
        _, html = req("GET", path)
        return re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html).group(1).decode()

    form = {"email": "filer@bench.example", "password": env["BENCH_PASSWORD"], "csrf_token": token("/auth/login")}
    r, _ = req("POST", "/auth/login", "&".join(f"{k}={v}" for k, v in form.items()).replace("@", "%40"),
               {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 302, r.status
    r, _ = req("POST", "/reports/new", f"csrf_token={token('/reports')}",
               {"Content-Type": "application/x-www-form-urlencoded"})
    rid = int(r.headers["Location"].split("/reports/")[1].split("/")[0])
    boundary = "----bench" + secrets.token_hex(6)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{token(f'/reports/{rid}/attachments')}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"classification\"\r\n\r\nrestricted\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"file\"; filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = mib * 1024 * 1024
    block = b"%PDF-1.7\n" + os.urandom(65536 - 9)
    digest = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.putrequest("POST", f"/reports/{rid}/attachments")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
    conn.endheaders()
    conn.send(head)
    started = time.monotonic()
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        conn.send(piece)
        digest.update(piece)
        sent += len(piece)
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    conn.send(tail)
    resp = conn.getresponse()
    resp.read()
    up_s = time.monotonic() - started
    assert resp.status == 302, resp.status
    _, html = req("GET", f"/reports/{rid}/attachments")
    att = int(re.search(rb'href="/attachments/(\d+)"', html).group(1))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", f"/attachments/{att}", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    resp = conn.getresponse()
    got, back = 0, hashlib.sha256()
    started = time.monotonic()
    while chunk := resp.read(65536):
        back.update(chunk)
        got += len(chunk)
        ahead = got / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    down_s = time.monotonic() - started
    return {"mib": mib, "mbit_s": mbit, "upload_s": round(up_s, 1), "download_s": round(down_s, 1),
            "identical": got == size and back.hexdigest() == digest.hexdigest(),
            "worker_peak_rss_mib": round(rss_peak(server.workers()), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=5)
    p.add_argument("--max-heads", type=int, default=8000)
    p.add_argument("--compare", action="store_true", help="also ramp heads against stock gthread")
    p.add_argument("--transfer", type=int, default=0, metavar="MiB", help="also a slow upload and download")
    p.add_argument("--rate", type=float, default=10.0, metavar="Mbit/s")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_ENV="production", PORTAL_INSTANCE_PATH=str(work / "instance"), PORTAL_SECRET_KEY="b" * 48,
               PORTAL_ARGON2_MEMORY_KIB="64", PORTAL_ARGON2_ITERATIONS="1", BENCH_PASSWORD="bench passphrase 12345")
    servers: list[Server] = []
    result: dict = {}
    try:
        subprocess.run([str(PORTAL), "init"], env=env, check=True, capture_output=True)
        if args.transfer:
            _seed_filer(env)
        server = Server(env, work)
        servers.append(server)
        heads = [n for n in (100, 400, 1000, 1600, 2400, 3200, 4000, 4800, 6400, 8000) if n <= args.max_heads]
        result["heads_survived"], result["heads"] = ramp(server.port, HEAD, b"x", heads, args.pages, 1.0, 3.0,
                                                         "heads", fresh=False)
        bodies = [8, 16, 24, 28, 30, 31, 32, 33, 36, 40]
        result["bodies_survived"], result["bodies"] = ramp(server.port, BODY, b"x" * 8192, bodies, args.pages, 1.0,
                                                           2.0, "bodies", fresh=True)
        if args.transfer:
            result["transfer"] = transfer(server, env, args.transfer, args.rate)
            print(f"      transfer: {result['transfer']}", flush=True)
        server.stop()
        if args.compare:
            stock = Server(env, work, ("-k", "gthread"))
            servers.append(stock)
            result["stock_gthread_heads_survived"], result["stock_gthread_heads"] = ramp(
                stock.port, HEAD, b"x", [8, 16, 24, 31, 32, 40, 64], args.pages, 1.0, 2.0, "stock gthread", fresh=True)
        print(f"survived: {result['heads_survived']} slow heads, {result['bodies_survived']} slow bodies "
              f"(2 workers x 16 threads)", flush=True)
        print(f"results appended to {write_result('slow_clients', result)}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


def _seed_filer(env: dict) -> None:
    code = (
        "import os\n"
        "from datetime import date, timedelta\n"
        "import sqlalchemy as sa\n"
        "from portal import create_app, db\n"
        "from portal.orgs.models import Organisation\n"
        "from portal.auth.models import User\n"
        "from portal.access.models import Clearance\n"
        "from portal.catalogue.models import Technology\n"
        "from portal.auth.passwords import Argon2Params, hash_password\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    s = db.session()\n"
        "    t = date.today()\n"
        "    org = Organisation(name='Bench', corporate_number='1180301018771', address='東京都',\n"
        "                       facility_clearance_from=t - timedelta(days=1), facility_clearance_until=t + timedelta(days=365))\n"
        "    s.add(org); s.flush()\n"
        "    u = User(email='filer@bench.example', name='Bench filer', role='filer', organisation_id=org.id,\n"
        "             password_hash=hash_password(os.environ['BENCH_PASSWORD'], Argon2Params(64, 1, 1)))\n"
        "    s.add(u); s.flush()\n"
        "    techs = list(s.execute(sa.select(Technology).where(Technology.code == 'T01')).scalars())\n"
        "    s.add(Clearance(user_id=u.id, level='confidential', expires_on=t + timedelta(days=365), reason='bench',\n"
        "                    compartments=techs))\n"
        "    s.commit()\n"
    )
    subprocess.run([PY, "-c", code], env=env, check=True)


if __name__ == "__main__":
    main()
