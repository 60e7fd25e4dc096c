"""``Idempotency-Key`` on every POST (draft-ietf-httpapi-idempotency-key-header): a client
that did not get the answer sends the same request again with the same key, and the action
is done once. Keys are per token; a key reused with a different request is refused (422) and
changes nothing. Two requests with one key at once: the second waits for the first's row
(PostgreSQL's unique index, SQLite's write lock) and is answered 409 if the first is still
being made, or as a replay once it is committed."""
from __future__ import annotations

import hashlib
import json

from flask import g, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import db
from portal.api.models import IdempotencyRecord
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError

HEADER = "Idempotency-Key"
MAX_KEY = 200


class KeyRefused(ServiceError):
    def __init__(self, message: str, reason: str, status: int):
        super().__init__(message, reason=reason)
        self.status = status


def fingerprint(*parts: object) -> str:
    h = hashlib.sha256()
    for p in (request.method, request.path, *parts):
        h.update(json.dumps(p, sort_keys=True, default=str, ensure_ascii=True).encode())
        h.update(b"\x00")
    return h.hexdigest()


def begin(fp: str) -> IdempotencyRecord | None:
    """The earlier answer to this key, when the same request was made with it (the caller
    replays it); None when the request is new (or carries no key). A key reused for another
    request is refused."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise KeyRefused(_("The Idempotency-Key must be 1 to %(n)d printable ASCII characters.", n=MAX_KEY),
                         "bad_idempotency_key", 400)
    token_id = g.api_token.id
    earlier = db.session().execute(select(IdempotencyRecord).where(
        IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key)).scalar_one_or_none()
    if earlier is not None:
        if earlier.fingerprint != fp:
            raise KeyRefused(_("This Idempotency-Key was used for a different request. Use a new key for a new "
                               "request."), "idempotency_key_reused", 422)
        g.idempotent_replay = True
        return earlier
    g.idempotency = (key, fp)
    return None


def remember(status: int, resource: str, location: str | None) -> None:
    """Record the answer in the request's transaction (a no-op without a key)."""
    pending = g.pop("idempotency", None)
    if pending is None:
        return
    key, fp = pending
    s = db.session()
    s.add(IdempotencyRecord(token_id=g.api_token.id, key=key, fingerprint=fp, status=status,
                            resource=resource, location=location))
    try:
        s.flush()
    except IntegrityError:  # the request path rolls the whole request back
        raise KeyRefused(_("A request with this Idempotency-Key is being made. Try again in a moment."),
                         "idempotency_key_in_use", 409) from None
