"""A clamd of the tests' own (like tests/private_postgres.py for PostgreSQL): a generated
clamd.conf, its socket and a copy of the project's offline signatures (clamav/) in a
temporary folder; never the system's clamav-daemon service. One per test process, started on
first use (``shared()``) and stopped when the process ends; a test that stops a scanner on
purpose starts one of its own (``PrivateClamd()``)."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from portal import clamd

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
SIGNATURES = Path(__file__).resolve().parent.parent / "clamav"
UPLOAD_LIMIT = 1024 * 1024 * 1024  # the portal's default PORTAL_MAX_UPLOAD_BYTES

# EICAR's test file and the project's test signature (clamav/portal-offline.ndb), assembled
# here so that a scanner on a developer's machine does not flag this source file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
PROJECT_MARKER = b"TTR-PORTAL-TEST-" + b"SIGNATURE:1b6f0e2c9d4a"


def available() -> bool:
    return os.path.exists(CLAMD)


class PrivateClamd:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="portal-clamd-"))
        self.db = self.root / "db"
        self.db.mkdir()
        for f in SIGNATURES.iterdir():
            if f.suffix in {".ndb", ".hdb"}:
                shutil.copy(f, self.db / f.name)
        self.socket = str(self.root / "clamd.sock")
        settings = {"LocalSocket": self.socket, "DatabaseDirectory": str(self.db),
                    "TemporaryDirectory": str(self.root), "LogFile": str(self.root / "clamd.log"),
                    "Foreground": "yes", "SelfCheck": "0", **clamd.limits(UPLOAD_LIMIT)}
        self.conf = self.root / "clamd.conf"
        self.conf.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PrivateClamd":
        self.proc = subprocess.Popen([CLAMD, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        client = self.client()
        deadline = time.monotonic() + 60
        while not client.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clamd did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def client(self, timeout: float = 30) -> clamd.Client:
        return clamd.Client(self.socket, timeout=timeout)

    def log(self) -> str:
        path = self.root / "clamd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def add_signature(self, name: str, needle: bytes) -> None:
        """A new signature in a database of its own, loaded by RELOAD (as after freshclam)."""
        with (self.db / "portal-added.ndb").open("a") as f:
            f.write(f"{name}:0:*:{needle.hex()}\n")
        self.client().reload()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_shared: PrivateClamd | None = None


def shared() -> PrivateClamd:
    """This process's clamd, started on first use."""
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        _shared = PrivateClamd().start()
        atexit.register(_shared.remove)
    return _shared
