"""One JSON log line and one set of metrics per request, written when the response ends.

A WSGI middleware around the whole app, so that it sees a response until its last byte: a
download or any streamed body is logged when the stream ends, with the real duration and
whether it was cut off (the server closed it before its end: the client went away, or the
body failed half-way). Flask tells it, at the end of the request context, what only Flask
knows: the route template, the ids in the path, the signed-in user.

The line holds no content: no path (an invitation link's path is its token), no query
string, no body, no file name, no cookie or header value; the route template and the
integer ids the route names (a report, an attachment) identify what was asked for.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator

from flask import Flask, g, request
from sqlalchemy import inspect as sa_inspect

from portal.auth import principal
from portal.observability import context, metrics

log = logging.getLogger("portal.request")

REQUEST_ID = "portal.request_id"   # environ keys: the id, what Flask knew, a quiet request
_SEEN = "portal.observed"
QUIET = "portal.quiet"
UNMATCHED = "<unmatched>"          # the route of a 404 that matched none: never the raw path


def init_app(app: Flask) -> None:
    app.teardown_request(_remember)
    app.wsgi_app = ObservedApp(app.wsgi_app)  # type: ignore[method-assign]


def _remember(exc: BaseException | None) -> None:
    """At the end of the request context (after the response was made, or when a stream
    ends): what the line needs from Flask, read without loading anything."""
    rule = request.url_rule
    request.environ[_SEEN] = {
        "route": rule.rule if rule is not None else None,
        "args": {k: v for k, v in (request.view_args or {}).items() if type(v) is int},
        "user_id": _user_id(g.get("_login_user")) if "_login_user" in g else principal.signed_in_user_id(),
        "remote_addr": request.remote_addr,
    }


def _user_id(user) -> int | None:
    """The signed-in user's id, if the request looked at who is signed in (Flask-Login's
    ``g._login_user``), taken from the ORM identity: a rolled-back request left the user
    expired, and reading ``user.id`` would query the database again."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    state = sa_inspect(user, raiseerr=False)
    identity = getattr(state, "identity", None)
    return identity[0] if identity else None


class ObservedApp:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        rid = context.accept(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID] = rid
        context.current.set(rid)
        exchange = _Exchange(environ, rid)
        metrics.in_progress(1)

        def observed_start_response(status: str, headers: list, exc_info=None):
            exchange.status = _code(status)
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, observed_start_response)
        except BaseException:
            exchange.finish()
            raise
        return _ObservedBody(body, exchange)


def _code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 500


class _Exchange:
    __slots__ = ("environ", "rid", "started", "status", "sent", "done")

    def __init__(self, environ: dict, rid: str) -> None:
        self.environ = environ
        self.rid = rid
        self.started = time.perf_counter()
        self.status: int | None = None
        self.sent = 0
        self.done = False

    def finish(self, *, complete: bool = False) -> None:
        if self.done:
            return
        self.done = True
        seconds = time.perf_counter() - self.started
        # The status the client was sent: a stream that fails after its headers stays a 200
        # (cut off); one that failed before any answer is a 500.
        status = self.status if self.status is not None else 500
        cut_off = self.status is not None and not complete
        seen = self.environ.get(_SEEN) or {}
        route = seen.get("route") or UNMATCHED
        method = metrics.method_label(self.environ.get("REQUEST_METHOD"))
        try:
            metrics.request_done(route, method, status, seconds, cut_off)
            metrics.in_progress(-1)
            if not (self.environ.get(QUIET) and status == 200):
                fields = {
                    "event": "request", "method": method, "route": seen.get("route"), "status": status,
                    "duration_ms": round(seconds * 1000, 1), "bytes": self.sent,
                    "remote_addr": seen.get("remote_addr", self.environ.get("REMOTE_ADDR")),
                    "user_id": seen.get("user_id"),
                }
                if seen.get("args"):
                    fields["args"] = seen["args"]
                if cut_off:
                    fields["cut_off"] = True
                log.log(logging.ERROR if status >= 500 else logging.INFO, "%s %s %s", method, route, status,
                        extra={"fields": fields})
        finally:
            context.current.set(None)


class _ObservedBody:
    """The response body as the server iterates it; ``close()`` is what every WSGI server
    calls at the end, whether the body was sent to its end or not."""

    def __init__(self, body: Iterable[bytes], exchange: _Exchange) -> None:
        self._body = body
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        ex = self._exchange
        try:
            for chunk in self._body:
                ex.sent += len(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            ex.finish()
            raise
        ex.finish(complete=True)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._exchange.finish()
