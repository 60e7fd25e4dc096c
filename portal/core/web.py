"""Small helpers the views share: safe redirects, the current settings, the client address."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request

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
