"""Absolute links (in mail) are built on ``PORTAL_BASE_URL`` and never on the request: the
``Host`` header (and a proxy's ``X-Forwarded-Host``) is whatever the client sent, so
``url_for(..., _external=True)`` would let anyone choose where an invitation link points."""
from __future__ import annotations

from flask import current_app


def absolute_url(base_url: str, endpoint: str, **values) -> str:
    """``base_url`` followed by the route's path (as ``notify`` builds a report's link). Needs an
    application context, not a request: the path comes from the URL map alone."""
    path = current_app.url_map.bind("base-url.invalid", script_name="/").build(endpoint, values)
    return base_url.rstrip("/") + path
