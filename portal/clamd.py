"""A client of ClamAV's daemon (clamd) over its socket: the INSTREAM command fed chunk by
chunk while the caller has them (an upload being encrypted, a stored blob being decrypted),
so the portal never holds a whole file nor writes its plaintext anywhere; PING, VERSION and
RELOAD for health and rescans.

Hand-written rather than a library: the maintained Python clients (``clamd``, ``pyclamd``)
take a whole file object for INSTREAM and cannot be fed from a parser's callbacks, and the
protocol is a few lines (clamav.net docs, "clamd" man page): ``zINSTREAM\\0``, then chunks
each prefixed by its length as a 4-byte big-endian integer, then a zero length; one reply
line ``stream: OK`` / ``stream: <name> FOUND`` / ``<message> ERROR``.

No Flask and no database here: the upload path, the CLI and /healthz use it alike.
"""
from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

CLEAN, INFECTED, ERROR = "clean", "infected", "error"
# clamd's own size bound for one INSTREAM chunk is far larger; this keeps syscalls few.
CHUNK = 256 * 1024


class ScannerUnavailable(Exception):
    """clamd could not be reached or went away before it answered: no verdict."""


@dataclass(frozen=True)
class Verdict:
    state: str  # clean | infected | error
    signature: str | None = None  # what was found (infected), or clamd's message (error)

    @property
    def unscannable(self) -> bool:
        """clamd could not look inside (an encrypted archive or document, a file beyond its
        limits): reported as a heuristic "signature", refused like malware (README)."""
        return self.state == INFECTED and (self.signature or "").startswith("Heuristics.")


def parse_reply(line: bytes) -> Verdict:
    text = line.rstrip(b"\0\n").decode("utf-8", "replace").strip()
    if text.endswith(" FOUND"):
        name = text[: -len(" FOUND")]
        name = name.split(": ", 1)[1] if ": " in name else name
        return Verdict(INFECTED, name.strip())
    if text.endswith(": OK"):
        return Verdict(CLEAN)
    # "INSTREAM size limit exceeded. ERROR", "stream: Can't allocate memory ERROR", ...
    message = text[: -len(" ERROR")] if text.endswith(" ERROR") else text
    return Verdict(ERROR, (message.split(": ", 1)[1] if message.startswith("stream: ") else message)[:200])


class Client:
    """Where clamd listens: a Unix socket path, or ``tcp://host:port``."""

    def __init__(self, address: str, *, timeout: float = 30.0, verdict_timeout: float = 300.0):
        self.address = address
        self.timeout = timeout
        # After the last byte clamd scans the whole stream (its MaxScanTime is 120 s by default):
        # the verdict may take longer than any one send.
        self.verdict_timeout = max(timeout, verdict_timeout)

    def connect(self) -> socket.socket:
        try:
            if self.address.startswith("tcp://"):
                host, _, port = self.address[len("tcp://"):].rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=self.timeout)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.address)
        except (OSError, ValueError) as exc:
            raise ScannerUnavailable(f"clamd at {self.address}: {exc}") from None
        return sock

    def command(self, name: str) -> str:
        with self.connect() as sock:
            try:
                sock.sendall(b"z" + name.encode() + b"\0")
                return _read_reply(sock).rstrip(b"\0\n").decode("utf-8", "replace")
            except OSError as exc:
                raise ScannerUnavailable(f"clamd {name}: {exc}") from None

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except ScannerUnavailable:
            return False

    def version(self) -> str:
        return self.command("VERSION")

    def reload(self) -> None:
        """Load the signature databases again (after freshclam, or a signature added)."""
        if self.command("RELOAD") != "RELOADING":
            raise ScannerUnavailable("clamd refused to reload")
        # clamd answers before it has reloaded; a PING is served once it has.
        deadline = time.monotonic() + self.timeout
        while not self.ping():
            if time.monotonic() > deadline:
                raise ScannerUnavailable("clamd did not come back after reloading")
            time.sleep(0.05)

    def instream(self) -> "InStream":
        return InStream(self.connect(), verdict_timeout=self.verdict_timeout)

    def scan(self, chunks) -> Verdict:
        """Scan an iterable of byte chunks."""
        stream = self.instream()
        try:
            for chunk in chunks:
                stream.feed(chunk)
            return stream.finish()
        finally:
            stream.close()


class InStream:
    """One INSTREAM scan in progress. ``feed`` as the bytes come, ``finish`` for the verdict.
    clamd stops reading when the stream passes its StreamMaxLength and answers with an
    error: a feed that finds the connection gone reads that answer instead of failing."""

    def __init__(self, sock: socket.socket, *, verdict_timeout: float = 300.0):
        self.sock = sock
        self.verdict_timeout = verdict_timeout
        self.sent = 0
        self.reply: bytes | None = None
        try:
            sock.sendall(b"zINSTREAM\0")
        except OSError as exc:
            sock.close()
            raise ScannerUnavailable(f"clamd INSTREAM: {exc}") from None

    def feed(self, data: bytes) -> None:
        if self.reply is not None:
            return  # clamd has answered (an error): the rest is not scanned
        view = memoryview(data)
        try:
            for start in range(0, len(view), CHUNK):
                part = view[start:start + CHUNK]
                self.sock.sendall(struct.pack(">I", len(part)))
                self.sock.sendall(part)
                self.sent += len(part)
        except OSError as exc:
            self.reply = self._reply_after_failure(exc)

    def _reply_after_failure(self, exc: OSError) -> bytes:
        try:
            return _read_reply(self.sock)
        except OSError:
            raise ScannerUnavailable(f"clamd went away during a scan: {exc}") from None

    def finish(self) -> Verdict:
        if self.reply is None:
            try:
                self.sock.sendall(struct.pack(">I", 0))
                self.sock.settimeout(self.verdict_timeout)
                self.reply = _read_reply(self.sock)
            except OSError as exc:
                self.reply = self._reply_after_failure(exc)
        if not self.reply:
            raise ScannerUnavailable("clamd closed the connection without a verdict")
        return parse_reply(self.reply)

    def close(self) -> None:
        self.sock.close()


def _read_reply(sock: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\0") and not buf.endswith(b"\n"):
        part = sock.recv(4096)
        if not part:
            break
        buf += part
    return bytes(buf)


_VERSION_DATE = re.compile(r"^ClamAV [^/]+/\d+/(.+)$")


def signatures_date(version: str, database_dir: Path | None = None) -> datetime | None:
    """When the loaded signatures were published: the date clamd reports for its official
    databases (``ClamAV 1.4.6/27467/Tue Dec  1 09:25:02 2026``), else the newest file of the
    database directory the portal was told of (the project's own offline signatures)."""
    m = _VERSION_DATE.match(version.strip())
    if m:
        try:
            parsed = parsedate_to_datetime(_rfc2822(m.group(1)))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            pass
    if database_dir is not None and database_dir.is_dir():
        times = [p.stat().st_mtime for p in database_dir.iterdir() if p.is_file()]
        if times:
            return datetime.fromtimestamp(max(times), timezone.utc)
    return None


def _rfc2822(ctime_text: str) -> str:
    # "Tue Dec  1 09:25:02 2026" (asctime) -> "Tue, 1 Dec 2026 09:25:02 +0000"
    day, month, date_, clock, year = ctime_text.split()
    return f"{day}, {date_} {month} {year} {clock} +0000"


# Signatures older than this are reported stale: freshclam updates them several times a day.
STALE_SIGNATURES_HOURS = 48


def health(address: str | None, database_dir: Path | None = None) -> dict:
    """clamd's state (ok, stale, down or not_configured), its version and the age in hours of
    the signatures it loaded (/healthz, /metrics)."""
    if not address:
        return {"state": "not_configured"}
    try:
        version = Client(address, timeout=2.0).version()
    except ScannerUnavailable:
        return {"state": "down"}
    published = signatures_date(version, database_dir)
    age = None if published is None else round((datetime.now(timezone.utc) - published).total_seconds() / 3600, 1)
    state = "ok" if age is not None and age <= STALE_SIGNATURES_HOURS else "stale"
    return {"state": state, "version": version, "signatures_age_hours": age}


def limits(max_upload_bytes: int) -> dict[str, str]:
    """clamd.conf settings that match the portal: a stream as long as the largest upload
    (plus the part headers' slack) is scanned whole, never cut at clamd's 25 MB default; what
    clamd cannot look into (encrypted, beyond a limit) is reported, not passed as clean."""
    mib = max_upload_bytes // (1024 * 1024) + 1
    return {
        "StreamMaxLength": f"{mib}M",
        "MaxFileSize": f"{mib}M",
        "MaxScanSize": f"{mib}M",
        "AlertEncrypted": "yes",
        "AlertExceedsMax": "yes",
        "HeuristicAlerts": "yes",
    }
