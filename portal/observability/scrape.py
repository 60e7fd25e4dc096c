"""``/metrics``: the Prometheus text format, for loopback clients or a bearer token.

Who may scrape:
- a request carrying ``Authorization: Bearer <PORTAL_METRICS_TOKEN>`` (compared in constant
  time); a request carrying any other Authorization is refused, wherever it comes from;
- otherwise a request whose TCP peer is a loopback address, unless ``PORTAL_BEHIND_PROXY`` is
  set. Behind a proxy the peer is usually the proxy itself, on loopback, for every visitor,
  and ``X-Forwarded-For`` is only as good as the proxy's configuration: so there only the
  token opens ``/metrics`` (a Prometheus on the same host sets it too).

Everyone else gets a plain 404, the same whether the token was wrong or absent. It is made
without the error page's template, which would open a session (its language form carries a
CSRF token): a scraper that is refused every 15 seconds must not write a session row each
time. A served scrape opens no session either, and is not logged (it would be a line every
15 seconds); it is counted in the request metrics under its one route.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from portal import db
from portal.core.guard import public
from portal.observability.middleware import QUIET
from portal.observability.state import StateCollector

bp = Blueprint("observability", __name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    settings = app.config["SETTINGS"]
    if settings.behind_proxy and not settings.metrics_token:
        app.logger.warning("PORTAL_BEHIND_PROXY is set and PORTAL_METRICS_TOKEN is not: /metrics answers 404 "
                           "to every client")


@bp.route("/metrics")
@public
def metrics():
    settings = current_app.config["SETTINGS"]
    if not may_scrape(settings):
        return Response("Not Found\n", 404, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
    body = generate_latest(_Scrape(StateCollector(settings, db.engine())))
    request.environ[QUIET] = True
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def may_scrape(settings) -> bool:
    given = request.headers.get("Authorization")
    if given is not None:
        scheme, _, token = given.partition(" ")
        return (scheme.lower() == "bearer" and settings.metrics_token is not None
                and _same(token.strip(), settings.metrics_token))
    if settings.behind_proxy:
        return False
    return _loopback(request.environ.get("REMOTE_ADDR"))


def _same(given: str, expected: str) -> bool:
    """Constant time whatever the lengths: both sides hashed first."""
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest(),
                               hashlib.sha256(expected.encode("utf-8")).digest())


def _loopback(addr: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((addr or "").split("%", 1)[0])
    except ValueError:
        return False  # a Unix socket (no address) is a proxy's way in, not a local scraper's
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class _Scrape:
    """This process's metrics, or every worker's under gunicorn (multiprocess mode), plus the
    deployment's state computed now."""

    def __init__(self, state: StateCollector) -> None:
        self.state = state

    def collect(self):
        path = os.environ.get(MULTIPROC_DIR)
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        yield from self.state.collect()
