"""The audit trail core: one ``record`` that appends an event in the caller's transaction.

Each event carries a sequence number and ``hash = SHA-256(prev_hash ‖ canonical(event))``.
Appends serialise on a transaction-scoped lock, so that many processes and threads build one
linear chain and an event for a transaction that rolls back never exists:

- SQLite: every transaction already holds the database write lock (BEGIN IMMEDIATE), so
  ``record`` reads the head, hashes and inserts at once.
- PostgreSQL: ``record`` stores the event in ``audit_pending`` within the caller's
  transaction; at COMMIT the deferred ``audit_seal`` trigger (migration 0001) takes the
  advisory lock, reads the head, assigns seq and time, hashes exactly as ``compute_hash``
  does and inserts into ``audit_events``. The lock is thus held only for the seal and the
  commit itself, not for the rest of the request, and never across a round trip to the
  application: appends from many processes queue briefly (bench/audit_append.py), and a
  transaction waiting for the lock holds no lock another appender needs (no deadlocks).
  The event returned by ``record`` has no seq or hash yet on PostgreSQL.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from portal.audit.models import AuditEvent, AuditPending
from portal.db import utcnow
from portal.observability import metrics

GENESIS = "0" * 64
# Any fixed number: the advisory lock that orders appends on PostgreSQL (used by audit_seal).
_PG_LOCK_KEY = 0x54545241  # "TTRA" = 1414812225

OUTCOMES = frozenset({"success", "denied", "failure"})

# The columns the hash covers, in order. Changing this list is a format change.
HASHED_FIELDS = (
    "seq", "occurred_at", "actor_id", "actor_email", "actor_role", "org_id", "source_ip",
    "action", "target_type", "target_id", "case_ref", "outcome", "reason", "details",
)


def neutralise(value: str | None, limit: int = 200) -> str | None:
    """CR/LF, other C0/C1 control characters and U+2028/U+2029 cannot forge lines in any log or export."""
    if value is None:
        return None
    value = str(value)
    if value.isprintable():  # the usual case: nothing below is ever printable
        return value[:limit]
    out = "".join(f"\\x{ord(ch):02x}" if ch < " " or "\x7f" <= ch <= "\x9f"
                  else f"\\u{ord(ch):04x}" if ch in _LINE_SEPARATORS or "\ud800" <= ch <= "\udfff" else ch
                  for ch in value)
    return out[:limit]


# Unicode line breaks beyond C0/C1 controls (str.splitlines and many viewers honour them).
# Lone surrogates (from undecodable input) are escaped too: they cannot be stored or hashed.
_LINE_SEPARATORS = frozenset("\u2028\u2029")


def format_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(values: Iterable[Any]) -> bytes:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def compute_hash(prev_hash: str, row: tuple) -> str:
    """``row`` holds HASHED_FIELDS in order, with occurred_at already formatted."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(b"\n")
    h.update(canonical(row))
    return h.hexdigest()


@dataclass(frozen=True)
class Actor:
    id: int | None
    email: str | None
    role: str | None
    org_id: int | None

    @classmethod
    def of(cls, user) -> "Actor":
        if user is None:
            return SYSTEM
        return cls(user.id, user.email, user.role, user.organisation_id)


SYSTEM = Actor(None, None, "system", None)


def _lock_and_head(session: Session) -> tuple[int, str]:
    """SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE)."""
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    if row is None:
        return 0, GENESIS
    return row[0], row[1]


_PENDING_INSERT = insert(AuditPending.__table__)


def record(
    session: Session,
    action: str,
    *,
    actor: Actor | Any = None,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: object = None,
    case_ref: str | None = None,
    reason: str | None = None,
    details: dict | None = None,
    source_ip: str | None = None,
    org_id: int | None = None,
) -> AuditEvent:
    """Append one event in ``session``'s transaction. Never pass protected content,
    passwords or tokens in ``details``: only identifiers and labels."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if not isinstance(actor, Actor):
        actor = Actor.of(actor)
    clean_details = json.dumps(
        {neutralise(k, 64): _clean(v) for k, v in sorted((details or {}).items())},
        ensure_ascii=False, separators=(",", ":"), sort_keys=True,
    )
    org = org_id if org_id is not None else actor.org_id
    # Integers as integers: the hash must encode exactly what the database gives back.
    fields = dict(
        actor_id=None if actor.id is None else int(actor.id),
        actor_email=neutralise(actor.email, 254),
        actor_role=neutralise(actor.role, 32),
        org_id=None if org is None else int(org),
        source_ip=neutralise(source_ip, 64),
        action=neutralise(action, 64),
        target_type=neutralise(target_type, 32),
        target_id=neutralise(None if target_id is None else str(target_id), 64),
        case_ref=neutralise(case_ref, 32),
        outcome=outcome,
        reason=neutralise(reason, 200),
        details=clean_details,
    )
    # The action's own pending changes reach the database first (and fail here if they fail).
    session.flush()
    metrics.audit_appended(fields["action"], outcome)
    if session.get_bind().dialect.name == "postgresql":
        # Sealed at COMMIT by the audit_seal trigger: seq, occurred_at, prev_hash and hash are
        # assigned then, under the append lock, so the returned event does not carry them.
        session.connection().execute(_PENDING_INSERT, {**fields, "tail": canonical(fields.values())[1:].decode("utf-8")})
        return AuditEvent(**fields)

    seq, prev = _lock_and_head(session)
    seq += 1
    event = AuditEvent(seq=seq, occurred_at=utcnow(), prev_hash=prev, **fields)
    event.hash = compute_hash(prev, hashed_values(event))
    session.add(event)
    session.flush()
    return event


def _clean(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return neutralise(str(v), 500)


def hashed_values(e: AuditEvent) -> tuple:
    return (
        e.seq, format_time(e.occurred_at), e.actor_id, e.actor_email, e.actor_role, e.org_id,
        e.source_ip, e.action, e.target_type, e.target_id, e.case_ref, e.outcome, e.reason,
        e.details,
    )
