"""Logs and metrics (DESIGN §9): one JSON line per request on stderr, a request id in every
line and in the ``X-Request-ID`` response header, and Prometheus metrics at ``/metrics``.

``init_app(app)`` is the app factory's one call. Imports stay inside it: the audit trail, the
attachment views and the daily job import ``portal.observability.metrics`` from every layer of
the code base, and importing that must not pull the request machinery in with it.
"""
from __future__ import annotations


def init_app(app) -> None:
    from portal.observability import logs, middleware, scrape

    settings = app.config["SETTINGS"]
    logs.configure(settings.log_level)
    scrape.init_app(app)
    middleware.init_app(app)
