"""Walk the chain and name the first broken sequence number.

Reads raw rows through a server-side cursor in constant memory; every event's hash is
recomputed from its own fields and its stored predecessor hash, and each predecessor hash
must equal the previous event's hash with no gap in the sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from portal.audit.trail import GENESIS, HASHED_FIELDS, canonical

import hashlib


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


_COLUMNS = ", ".join(HASHED_FIELDS) + ", prev_hash, hash"


def _fmt_time(value) -> str:
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_chain(
    conn: Connection,
    *,
    batch: int = 20000,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    expected_seq = 1
    prev = GENESIS
    count = 0
    sha256 = hashlib.sha256
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(
        text(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq")
    )
    for part in result.partitions(batch):
        for row in part:
            seq = row[0]
            if seq != expected_seq:
                return VerifyResult(False, count, expected_seq - 1, prev, expected_seq,
                                    f"sequence {expected_seq} missing (found {seq})")
            values = list(row[:14])
            values[1] = _fmt_time(values[1])
            stored_prev, stored_hash = row[14], row[15]
            if stored_prev != prev:
                return VerifyResult(False, count, seq - 1, prev, seq, "previous hash does not match")
            h = sha256(prev.encode("ascii"))
            h.update(b"\n")
            h.update(canonical(values))
            if h.hexdigest() != stored_hash:
                return VerifyResult(False, count, seq - 1, prev, seq, "event hash does not match its content")
            prev = stored_hash
            expected_seq += 1
            count += 1
        if progress:
            progress(count)
    return VerifyResult(True, count, expected_seq - 1, prev)
