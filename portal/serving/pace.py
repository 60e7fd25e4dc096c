"""How fast a client must keep a transfer moving (portal/serving/worker.py applies it).

A 1 GiB upload over a 10 Mbit/s company link takes a quarter of an hour, so no limit here is
on a request's total time. What is bounded is the client's share of it: the request head must
arrive within ``header_seconds`` (read by the worker's event loop, no thread waits for it);
after that, every read of the body and every write of the response must make progress within
``idle_seconds``, and over each ``idle_seconds`` spent waiting on the client at least
``min_rate`` bytes a second must move. A client that trickles its body or reads its download a
few bytes at a time is cut off instead of holding a thread for ever; time the portal itself
spends (encrypting, reading the database) never counts against the client.

The numbers come from the environment (README "Production"); the defaults are generous to a
slow link and still cap what a deliberately slow client can hold.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import NoReturn

from werkzeug.exceptions import ClientDisconnected

log = logging.getLogger("portal.serving")


@dataclass(frozen=True)
class Limits:
    header_seconds: float = 10.0
    idle_seconds: float = 60.0
    min_rate: int = 4096  # bytes per second of waiting on the client

    VARIABLES = {  # noqa: RUF012 - a class-level table, not a dataclass field
        "header_seconds": "PORTAL_CLIENT_HEADER_SECONDS",
        "idle_seconds": "PORTAL_CLIENT_IDLE_SECONDS",
        "min_rate": "PORTAL_CLIENT_MIN_RATE",
    }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, float] = {}
        for name, variable in cls.VARIABLES.items():
            raw = environ.get(variable, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{variable} must be a number, not {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{variable} must be positive, not {raw!r}")
            values[name] = value
        if "min_rate" in values:
            values["min_rate"] = int(values["min_rate"])
        return cls(**values)  # type: ignore[arg-type]


class ClientTooSlow(ClientDisconnected, ConnectionResetError):
    """Raised by a paced socket: to the application it is a client that went away (a 400 that
    nobody reads, recorded as an incomplete upload); to gunicorn a reset connection, closed
    without a traceback."""

    def __init__(self, message: str):
        ClientDisconnected.__init__(self, description=message)
        self.errno = errno.ECONNRESET
        self.strerror = message


class PacedSocket:
    """A client connection whose transfers must keep moving. Outside a request (the worker's
    event loop reading a head, a kept-alive connection waiting) it is the plain socket."""

    def __init__(self, sock: socket.socket, limits: Limits, peer: object = None):
        self.raw = sock
        self.limits = limits
        self.peer = peer
        self._pacing = False
        self._waited = 0.0
        self._moved = 0

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def fileno(self) -> int:
        return self.raw.fileno()

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)

    def begin_request(self) -> None:
        self._pacing = True
        self._waited = 0.0
        self._moved = 0

    def end_request(self) -> None:
        self._pacing = False

    def recv(self, size: int, *flags: int) -> bytes:
        return self._paced(self.raw.recv, size, *flags)

    def send(self, data, *flags: int) -> int:
        return self._paced(self.raw.send, data, *flags)

    def sendall(self, data, *flags: int) -> None:
        if not self._pacing or self.raw.gettimeout() == 0.0:
            self.raw.sendall(data, *flags)
            return
        view = memoryview(data).cast("B")
        while view:
            sent = self._paced(self.raw.send, view, *flags)
            view = view[sent:]

    def _paced(self, op, arg, *flags):
        prior = self.raw.gettimeout()
        if not self._pacing or prior == 0.0:
            return op(arg, *flags)
        idle = self.limits.idle_seconds if prior is None else min(prior, self.limits.idle_seconds)
        self.raw.settimeout(idle)
        started = time.monotonic()
        try:
            result = op(arg, *flags)
        except TimeoutError:
            if prior is not None and prior < self.limits.idle_seconds:
                raise  # the caller's own, shorter deadline (gunicorn draining a body)
            self._give_up(f"nothing moved for {idle:g} s")
        finally:
            self.raw.settimeout(prior)
        self._waited += time.monotonic() - started
        self._moved += result if isinstance(result, int) else len(result)
        if self._waited >= self.limits.idle_seconds:
            if self._moved < self.limits.min_rate * self._waited:
                self._give_up(f"{self._moved} bytes in {self._waited:.0f} s of waiting, "
                              f"under {self.limits.min_rate} bytes/s")
            self._waited, self._moved = 0.0, 0
        return result

    def _give_up(self, why: str) -> NoReturn:
        self._pacing = False
        log.warning("closing a slow client %s: %s", _address(self.peer), why)
        try:
            self.raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise ClientTooSlow(f"client too slow: {why}")


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")
