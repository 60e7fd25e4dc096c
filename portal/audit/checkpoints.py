"""Signed checkpoints of the audit chain (DESIGN §8). The Ed25519 key lives in a 0600 file
apart from the database, so someone who can rewrite the database, even recomputing every
hash, cannot produce a checkpoint the rewritten chain matches.

Two checks, of different strength, against someone who can rewrite the database:

- ``check_stored``: the newest checkpoint kept in ``audit_checkpoints``. It catches a trail
  truncated or rewritten below that checkpoint (a restore of an old copy, a lost tail, a
  careless edit), but whoever can delete events can delete the checkpoint rows too: then it
  checks an older one, or finds none. It proves the trail extends the newest checkpoint the
  database still holds, nothing more.
- ``check``: a checkpoint an auditor kept outside the portal. No database rewrite can take
  it back, so it proves the trail still extends what it was when that checkpoint was signed."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from crypto import SigningKey, key_id_of, verify as verify_signature
from portal.audit.models import AuditCheckpoint, AuditEvent
from portal.audit.trail import GENESIS

FORMAT = "ttr-audit-checkpoint/1"


@lru_cache(maxsize=4)
def signing_key(path: str) -> SigningKey:
    return SigningKey.load(Path(path))


def payload_bytes(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def make(session: Session, key: SigningKey, reason: str) -> AuditCheckpoint:
    seq, h = head(session)
    at = datetime.now(timezone.utc)
    payload = {"format": FORMAT, "seq": seq, "hash": h, "signed_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               "key_id": key.key_id}
    cp = AuditCheckpoint(seq=seq, hash=h, signed_at=at, key_id=key.key_id, reason=reason,
                         signature=base64.b64encode(key.sign(payload_bytes(payload))).decode("ascii"))
    session.add(cp)
    session.flush()
    return cp


def document(cp: AuditCheckpoint, public_pem: bytes) -> dict:
    """What an auditor downloads and keeps."""
    return {"payload": {"format": FORMAT, "seq": cp.seq, "hash": cp.hash,
                        "signed_at": cp.signed_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "key_id": cp.key_id},
            "signature": cp.signature, "public_key": public_pem.decode("ascii")}


@dataclass(frozen=True)
class StoredCheck:
    ok: bool
    message: str
    checkpoint: AuditCheckpoint | None = None
    stored: int = 0  # how many checkpoints the database holds


_FIELDS = ("id", "seq", "hash", "signed_at", "key_id", "reason", "signature")


def newest(conn) -> AuditCheckpoint | None:
    """The checkpoint written last (highest id), read on the Core connection ``conn``."""
    row = conn.execute(select(*[getattr(AuditCheckpoint, f) for f in _FIELDS])
                       .order_by(AuditCheckpoint.id.desc()).limit(1)).first()
    return None if row is None else AuditCheckpoint(**dict(zip(_FIELDS, row)))


def check_stored(conn, public_pem: bytes, cp: AuditCheckpoint | None) -> StoredCheck:
    """Does the current chain extend ``cp`` (the newest stored checkpoint, read with
    ``newest`` before the chain was walked)? Its signature must be good for ``public_pem``
    and the event at its sequence number must carry its hash."""
    stored = conn.execute(select(func.count()).select_from(AuditCheckpoint)).scalar_one()
    if cp is None:
        return StoredCheck(True, "no signed checkpoint is stored in the database", None, stored)
    ok, message = check(conn, document(cp, public_pem), public_pem)
    if ok and cp.key_id != key_id_of(public_pem):
        ok, message = False, f"checkpoint {cp.id} names key {cp.key_id}, not this public key"
    return StoredCheck(ok, message, cp, stored)


def check(conn, doc: dict, public_pem: bytes) -> tuple[bool, str]:
    """Does the current chain extend the checkpoint? ``public_pem`` is the key the auditor
    trusts (never the one inside the document alone)."""
    try:
        payload = doc["payload"]
        signature = base64.b64decode(doc["signature"])
        seq, h = int(payload["seq"]), str(payload["hash"])
    except (KeyError, TypeError, ValueError):
        return False, "the checkpoint file is not in the expected format"
    if payload.get("format") != FORMAT:
        return False, "the checkpoint file is not in the expected format"
    if not verify_signature(public_pem, signature, payload_bytes(payload)):
        return False, "the checkpoint's signature is not valid for this public key"
    if seq == 0:
        return True, "empty checkpoint"
    row = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": seq}).first()
    if row is None:
        return False, f"event {seq} of the checkpoint no longer exists: the trail was truncated"
    if row[0] != h:
        return False, f"event {seq} differs from the checkpoint: history before it was rewritten"
    return True, f"the trail extends the checkpoint at event {seq}"
