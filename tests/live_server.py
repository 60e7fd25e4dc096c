"""Real gunicorn servers for the tests that need one (long transfers, slow clients, a database
outage, two app servers): started with the project's own configuration
(portal/serving/gunicorn_conf.py) on a free port, and a small HTTP client that speaks to them
the way Flask's test client does (``get``/``post``, cookies kept, redirects not followed), so
the page-driving helpers of the other tests work against them unchanged."""
from __future__ import annotations

import http.client
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

CONFIG = "python:portal.serving.gunicorn_conf"
ARGON2_FAST = {"PORTAL_ARGON2_MEMORY_KIB": "64", "PORTAL_ARGON2_ITERATIONS": "1", "PORTAL_ARGON2_LANES": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    """A production configuration (no test shortcuts but fast password hashing) on the given
    database and instance folder (keyring, audit key, blobs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(ARGON2_FAST)
    env.update(PORTAL_ENV="production", PORTAL_DATABASE_URL=database_url, PORTAL_INSTANCE_PATH=str(instance),
               PORTAL_SECRET_KEY="s" * 48, PORTAL_BASE_URL="http://127.0.0.1:5000")
    from tests.private_clamd import shared

    scanner = shared()  # the test process's private clamd scans the server's uploads too
    env.update(PORTAL_CLAMD_SOCKET=scanner.socket, PORTAL_CLAMD_DATABASE_DIR=str(scanner.db))
    env.update(extra)
    return env


class Server:
    def __init__(self, env: dict[str, str], log_dir: Path, *, name: str = "server", workers: int = 1,
                 args: tuple[str, ...] = ()):
        self.port = free_port()
        self.log = Path(log_dir) / f"{name}-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", CONFIG, "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), *args, "portal:create_app()"],
            env=env, cwd=log_dir, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def browser(self) -> "Browser":
        return Browser(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Page:
    """What Flask's test client returns, as far as the tests use it."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status_code = status
        self.headers = headers
        self.data = body

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def get_data(self, as_text: bool = False):
        return self.data.decode("utf-8", "replace") if as_text else self.data

    def get_json(self):
        return json.loads(self.data)


class Browser:
    """One person's cookies against one server; a Browser can be moved to another server
    (``on(port)``) keeping them, as a load balancer would move a person."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None):
        self.port = port
        self.cookies: dict[str, str] = dict(cookies or {})

    def on(self, port: int) -> "Browser":
        return Browser(port, self.cookies)

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def keep_cookies(self, headers: http.client.HTTPMessage) -> None:
        for raw in headers.get_all("Set-Cookie") or []:
            pair, _, attrs = raw.partition(";")
            name, _, value = pair.strip().partition("=")
            expired = "max-age=0" in attrs.lower().replace(" ", "") or "1970" in attrs
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> Page:
        path = _path_of(path)
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers={**self.cookie_header(), **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
            self.keep_cookies(resp.headers)
            return Page(resp.status, resp.headers, data)
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Page:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict | None = None, content_type: str | None = None, **kw) -> Page:
        data = data or {}
        if content_type == "multipart/form-data" or any(isinstance(v, tuple) for v in data.values()):
            body, ctype = multipart(data)
        else:
            body = urllib.parse.urlencode(data, doseq=True).encode()
            ctype = "application/x-www-form-urlencoded"
        return self.request("POST", path, body=body, headers={"Content-Type": ctype}, **kw)


def _path_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))


def multipart_parts(fields: dict, file_field: str, filename: str, boundary: str) -> tuple[bytes, bytes]:
    """The bytes before and after a file's content in a multipart body (fields first, as a
    browser sends a form whose file input is last)."""
    head = io.BytesIO()
    for name, value in fields.items():
        head.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    head.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; "
               f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
    return head.getvalue(), f"\r\n--{boundary}--\r\n".encode()


def multipart(data: dict) -> tuple[bytes, str]:
    boundary = "----portal" + secrets.token_hex(8)
    out = io.BytesIO()
    for name, value in data.items():
        if isinstance(value, tuple):
            fileobj, filename = value
            content = fileobj.read() if hasattr(fileobj, "read") else fileobj
            out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                      f"Content-Type: application/octet-stream\r\n\r\n".encode())
            out.write(content)
            out.write(b"\r\n")
        else:
            for v in value if isinstance(value, list) else [value]:
                out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n".encode())
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Paced:
    """Sends or reads at a fixed rate, the way a slow link does: ``rate`` bytes a second in
    slices of a tenth of a second, measured from the start (no drift)."""

    def __init__(self, rate: int, slice_seconds: float = 0.1):
        self.rate = rate
        self.step = max(1, int(rate * slice_seconds))
        self.started = time.monotonic()
        self.done = 0

    def wait(self, n: int) -> None:
        self.done += n
        ahead = self.done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


PORTAL = Path(sys.executable).parent / "portal"


def portal_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(PORTAL), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"portal {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
