"""Known browsers: a signed cookie, set at every successful sign-in, that names the accounts
which have signed in with this browser (OWASP "device cookies").

It proves nothing about who is at the keyboard and opens no session; it only lets the
throttle tell the owner's browser from a stranger's (``portal.auth.throttle``): a stranger's
failures, however many and from however many addresses, never hold a known browser back.
A cookie is used rather than a list of addresses the owner signed in from because it does
not depend on the address at all: an office behind one NAT address, a mobile user whose
address changes, a proxy that forwards every request from its own address (without
``PORTAL_BEHIND_PROXY``) or passes a forged ``X-Forwarded-For`` through (with it) all leave
it as it is. Only the server can write one, with the secret key.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "ttr_device"
COOKIE_PATH = "/auth"  # only the sign-in pages read it
_SALT = "portal.auth.known-device"
MAX_ACCOUNTS = 10  # a shared browser remembers the last ten accounts


@dataclass(frozen=True)
class KnownDevice:
    id: str
    user_ids: tuple[int, ...]

    def knows(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.user_ids

    def device_for(self, user_id: int | None) -> str | None:
        """This browser's id when it is known to the account, for the throttle's source."""
        return self.id if self.knows(user_id) else None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def read(value: str | None, secret: str, max_age_days: int) -> KnownDevice | None:
    """The browser's cookie, or None when there is none or it is forged, malformed or old."""
    if not value or len(value) > 1000:
        return None
    try:
        data = _serializer(secret).loads(value, max_age=max_age_days * 86400)
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str) or not isinstance(data.get("u"), list):
        return None
    ids = tuple(u for u in data["u"] if isinstance(u, int) and not isinstance(u, bool))
    return KnownDevice(data["d"], ids)


def remember(current: KnownDevice | None, user_id: int, secret: str) -> str:
    """The cookie value after ``user_id`` signed in with this browser (its id kept)."""
    device_id = current.id if current is not None else secrets.token_urlsafe(16)
    ids = [u for u in (current.user_ids if current is not None else ()) if u != user_id]
    ids = [*ids, user_id][-MAX_ACCOUNTS:]
    return _serializer(secret).dumps({"d": device_id, "u": ids})
