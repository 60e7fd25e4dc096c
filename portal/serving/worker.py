"""The gunicorn worker the portal serves with: gunicorn's threaded worker (``gthread``), changed
where a slow client could otherwise hold a thread or the event loop.

* A request's head (request line and headers) is read by the worker's event loop, a few bytes
  at a time as they arrive, and handed to a thread only once complete. A client that trickles
  its headers (slowloris) holds a connection slot, never a thread, and is closed when
  ``PORTAL_CLIENT_HEADER_SECONDS`` pass without a complete head. Stock gthread gives each new
  connection a thread that waits up to 5 s for its first byte and then blocks, without a time
  limit, until the headers are complete.
* Once a thread has the request, the body and the response go through a paced socket
  (portal/serving/pace.py): they may take as long as they need while they keep moving, so a
  1 GiB upload over a slow link completes, and a client that stops is cut off.
* Closing a connection lingers for the client's last bytes in the event loop instead of
  blocking it for up to 2 s per connection (gthread's ``close_graceful`` on the main thread).

It serves plain HTTP/1.1 behind a proxy (README "Production"): TLS and HTTP/2 are the proxy's.
Built on gthread's internals of gunicorn 27 (pyproject.toml pins the major version).
"""
from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import OrderedDict
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

from portal.serving.pace import Limits, PacedSocket

HEAD_END = b"\r\n\r\n"
# A head longer than this without its end goes to a thread anyway: gunicorn's parser then
# answers 400 or 431 by its own limits (limit_request_line, limit_request_field_size).
MAX_BUFFERED_HEAD = 64 * 1024
# How long a closed connection waits for the client's last bytes (RFC 9112 §9.6), as gunicorn.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024


class PortalConn(TConn):
    def __init__(self, worker: "PortalWorker", *args):
        super().__init__(*args)
        self.worker = worker
        self.head: bytearray | None = None

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


class PortalWorker(ThreadWorker):

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        protocols = cfg.http_protocols if isinstance(cfg.http_protocols, (list, tuple)) else [cfg.http_protocols]
        if cfg.is_ssl or any(p != "h1" for p in protocols):
            raise RuntimeError("portal.serving.worker.PortalWorker serves plain HTTP/1.1 behind a proxy: "
                               "leave TLS and HTTP/2 to the proxy")

    def init_process(self):
        self.limits = Limits.from_env()
        self.heading: OrderedDict[PortalConn, float] = OrderedDict()
        self.lingering: OrderedDict[socket.socket, tuple[float, int]] = OrderedDict()
        self.busy = 0  # requests handed to a thread and not yet finished
        super().init_process()

    def set_accept_enabled(self, enabled):
        # A worker whose threads are all taken leaves new connections to the other workers
        # (they all accept on one socket); gthread would accept them and queue them behind
        # the slow ones. Its event loop asks again on every turn.
        super().set_accept_enabled(enabled and self.busy < self.cfg.threads)

    def finish_request(self, conn, fs):
        self.busy -= 1
        super().finish_request(conn, fs)
        if self.alive and not self._accepting and self.nr_conns < self.worker_connections:
            self.set_accept_enabled(True)

    # ------------------------------------------------------------ reading the head

    def accept(self, listener):
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = PortalConn(self, self.cfg, PacedSocket(client, self.limits, addr), addr, listener.getsockname())
        self._read_head(conn, b"")

    def enqueue_req(self, conn):
        """gthread calls this for a kept-alive connection that became readable and for one whose
        client already sent its next request behind the last: both start with a head."""
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self._read_head(conn, buffered)

    def _read_head(self, conn: PortalConn, buffered: bytes) -> None:
        conn.head = bytearray(buffered)
        if HEAD_END in conn.head:
            self._dispatch(conn)
            return
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))
        self.heading[conn] = time.monotonic() + self.limits.header_seconds

    def _on_head_bytes(self, conn: PortalConn, _fileobj) -> None:
        try:
            data = conn.sock.raw.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading_head(conn)
            self._drop(conn)
            return
        assert conn.head is not None
        # Only the new bytes (and the three before them) can complete the head: a head sent a
        # byte at a time is not searched again from its start at every byte.
        start = max(0, len(conn.head) - len(HEAD_END) + 1)
        conn.head += data
        if conn.head.find(HEAD_END, start) >= 0 or len(conn.head) > MAX_BUFFERED_HEAD:
            self._stop_reading_head(conn)
            self._dispatch(conn)

    def _stop_reading_head(self, conn: PortalConn) -> None:
        self.heading.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _dispatch(self, conn: PortalConn) -> None:
        head, conn.head = bytes(conn.head or b""), None
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(head)
        # gthread's handle() would otherwise wait up to 5 s on a thread for data that is here.
        conn.data_ready = True
        conn.sock.begin_request()
        self.busy += 1
        if self.busy >= self.cfg.threads:
            self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def _drop(self, conn: PortalConn) -> None:
        self.nr_conns -= 1
        TConn.close(conn)

    def handle(self, conn):
        try:
            return super().handle(conn)
        finally:
            conn.sock.end_request()

    # ------------------------------------------------------------ closing

    def linger(self, conn: PortalConn) -> None:
        """gthread's graceful close, without blocking the event loop: send FIN now, read what
        the client still sends until it closes or LINGER_SECONDS pass."""
        sock = conn.sock.raw
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._on_linger_bytes)
        except (OSError, ValueError, KeyError):
            _close(sock)
            return
        self.lingering[sock] = (time.monotonic() + LINGER_SECONDS, 0)

    def _on_linger_bytes(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        deadline, drained = self.lingering.get(sock, (0.0, 0))
        drained += len(data)
        if data and drained < LINGER_MAX_BYTES:
            self.lingering[sock] = (deadline, drained)
            return
        self._end_linger(sock)

    def _end_linger(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        _close(sock)

    # ------------------------------------------------------------ time limits

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        # Both dicts are in deadline order: every entry got the same allowance when it came in.
        while self.heading:
            conn, deadline = next(iter(self.heading.items()))
            if deadline > now:
                break
            self._stop_reading_head(conn)
            self._drop(conn)
        while self.lingering:
            sock, (deadline, _) = next(iter(self.lingering.items()))
            if deadline > now:
                break
            self._end_linger(sock)

    def _cap_keepalive(self, deadline):
        # Stopping: a head still arriving gets as long as a kept-alive connection, no more.
        super()._cap_keepalive(deadline)
        for conn, own in list(self.heading.items()):
            self.heading[conn] = min(own, deadline)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
