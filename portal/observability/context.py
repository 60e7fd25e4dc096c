"""The request id: accepted from ``X-Request-ID`` when it is a short, safe token, otherwise
made here; carried in a context variable so that every log record of the request names it."""
from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

# What a proxy or a load balancer sends (nginx's $request_id is 32 hex digits, others send a
# UUID): letters, digits and a few separators, at most 64 characters. Anything else — spaces,
# quotes, control characters, several ids joined by a comma — is replaced, so a client cannot
# write what it likes into every log line of its request.
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

current: ContextVar[str | None] = ContextVar("portal_request_id", default=None)


def accept(incoming: str | None) -> str:
    if incoming and _SAFE.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)
