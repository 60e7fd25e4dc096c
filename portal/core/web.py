"""Small helpers the views share: safe redirects, the current settings, the client address."""
from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from flask import current_app, request, url_for

from portal.config import Settings


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def client_ip() -> str | None:
    return request.remote_addr


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths: no scheme, no host, no backslash tricks."""
    if not target or len(target) > 500:
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def url_template(endpoint: str, arg: str) -> Callable[[int], str]:
    """``url_for(endpoint, arg=id)`` for the many rows of a list: the URL is built once around a
    marker and each id substituted (url_for costs tens of microseconds per call)."""
    marker = 918273645
    head, tail = url_for(endpoint, **{arg: marker}).split(str(marker))
    return lambda value: f"{head}{int(value)}{tail}"
