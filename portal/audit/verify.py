"""Walk the chain and name the first broken sequence number.

Every event's hash is recomputed here, in Python, from its own fields and its stored
predecessor hash; each predecessor hash must equal the previous event's hash, with no gap in the
sequence. The database is only asked for the rows, never to check anything itself.

Because an event's hash depends only on its own row, the work splits: on PostgreSQL the
sequence is cut into ranges verified side by side (one in this process, the rest in forked
workers, each streaming its rows with COPY), and the links across the cuts are checked here.
The outcome is exactly that of one sequential walk: the first broken sequence number.
"""
from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import re
from dataclasses import dataclass
from datetime import timezone
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from portal.audit.trail import GENESIS, HASHED_FIELDS, canonical


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


_COLUMNS = ", ".join(HASHED_FIELDS) + ", prev_hash, hash"

# Below this many events one sequential walk is quicker than starting workers.
PARALLEL_MIN_EVENTS = 200_000

try:  # The C encoder behind json.dumps, minus its per-call set-up: same bytes as canonical().
    from json.encoder import c_encode_basestring, c_make_encoder

    _encode = c_make_encoder(None, None, c_encode_basestring, None, ":", ",", False, False, True)

    def _canonical(values: list) -> bytes:
        return "".join(_encode(values, 0)).encode("utf-8")
except (ImportError, TypeError):  # pragma: no cover - non-CPython
    _canonical = canonical


_SQLITE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}", re.ASCII)


def _fmt_time(value) -> str:
    if isinstance(value, str):
        # SQLite: text exactly as the portal stores it ("YYYY-MM-DD HH:MM:SS.ffffff", UTC). Any
        # other spelling (an offset, say, that the application would read differently) is left
        # as it is, so it cannot match the hash.
        if _SQLITE_TIME.fullmatch(value):
            return value[:10] + "T" + value[11:] + "Z"
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_chain(
    conn: Connection,
    *,
    batch: int = 20000,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Verify the whole chain. ``workers``: parallel ranges on PostgreSQL (default: up to 2,
    one per CPU; 1 = a single sequential walk)."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return _verify_pg(conn, workers=workers, progress=progress)
    return _verify_rows(conn, batch=batch, progress=progress)


# ---------------------------------------------------------------- any database (SQLite)

def _verify_rows(conn: Connection, *, batch: int, progress) -> VerifyResult:
    expected_seq = 1
    prev = GENESIS
    count = 0
    sha256 = hashlib.sha256
    stmt = text(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq").execution_options(
        stream_results=True, yield_per=batch)
    for part in conn.execute(stmt).partitions(batch):
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
            if sha256(prev.encode("utf-8") + b"\n" + _canonical(values)).hexdigest() != stored_hash:
                return VerifyResult(False, count, seq - 1, prev, seq, "event hash does not match its content")
            prev = stored_hash
            expected_seq += 1
            count += 1
        if progress:
            progress(count)
    return VerifyResult(True, count, expected_seq - 1, prev)


# ---------------------------------------------------------------- PostgreSQL

# Rows as COPY text, integers first: seq, actor_id, org_id, prev_hash, hash, then the text
# fields in hash order. The server formats the time exactly as format_time() does.
_PG_SELECT = ("SELECT seq, actor_id, org_id, prev_hash, hash, "
              "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
              "actor_email, actor_role, source_ip, action, target_type, target_id, case_ref, outcome, reason, details "
              "FROM audit_events")
assert HASHED_FIELDS == ("seq", "occurred_at", "actor_id", "actor_email", "actor_role", "org_id", "source_ip",
                         "action", "target_type", "target_id", "case_ref", "outcome", "reason", "details")
_NULL = "\\N"
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_COPY_ESCAPE_RE = re.compile(r"\\(.)")
try:
    from json.encoder import c_encode_basestring as _quote
except ImportError:  # pragma: no cover - non-CPython
    from json.encoder import py_encode_basestring as _quote


@dataclass
class _Part:
    """The outcome of verifying rows lo < seq <= hi (lo None: no lower bound)."""
    first_prev: str | None = None   # stored prev_hash of the first row (linked by the caller)
    last_hash: str | None = None    # hash of the last row verified good
    count: int = 0                  # rows verified good, from the start of the range
    bad_seq: int | None = None
    problem: str | None = None


def _unescape(field: str) -> str | None:
    if field == _NULL:
        return None
    return _COPY_ESCAPE_RE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), field)


def _parse_copy_line(line: str) -> tuple[int, str, str, str]:
    r"""One COPY text row -> (seq, canonical JSON of the hashed fields, prev_hash, hash).

    Fast path, for rows whose only backslashes are NULL markers (then every "\N" is a whole
    field and every "\t" a separator): the text fields are JSON-quoted in one call, the
    separators turned into '","'. Any other row is unescaped field by field and encoded like
    canonical(). Both give exactly canonical(row) (tests/test_audit_trail.py checks it)."""
    if line.endswith("\n"):
        line = line[:-1]
    if line.count("\\") == line.count(_NULL):
        seq, aid, oid, prev, digest, ts, email, role, tail = line.split("\t", 8)
        if tail.count("\t") == 7:
            tail = _quote(tail).replace("\\t", '","')
            if _NULL in tail:
                tail = tail.replace('"\\\\N"', "null")
            text_ = "".join((
                "[", seq, ',"', ts, '",', "null" if aid == _NULL else aid, ",",
                "null" if email == _NULL else _quote(email), ",", "null" if role == _NULL else _quote(role), ",",
                "null" if oid == _NULL else oid, ",", tail, "]",
            ))
            return int(seq), text_, prev, digest
    f = [_unescape(v) for v in line.split("\t")]
    if len(f) != 16:
        raise RuntimeError("unexpected COPY row from audit_events")
    values = [int(f[0]), f[5], None if f[1] is None else int(f[1]), f[6], f[7],
              None if f[2] is None else int(f[2]), *f[8:16]]
    return values[0], _canonical(values).decode("utf-8"), f[3], f[4]


def _verify_range(cursor, lo: int | None, hi: int, start_seq: int, prev: str | None) -> _Part:
    """Stream one range with COPY and verify it. ``prev``: the hash the first row must link to
    (GENESIS for the first range), or None when the caller links the ranges."""
    where = f"seq <= {int(hi)}" if lo is None else f"seq > {int(lo)} AND seq <= {int(hi)}"
    sha256 = hashlib.sha256
    parse = _parse_copy_line
    part = _Part()
    expected = start_seq
    count = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a million short-lived rows: the cyclic collector only slows this down
    try:
        with cursor.copy(f"COPY ({_PG_SELECT} WHERE {where} ORDER BY seq) TO STDOUT") as copy:
            for data in copy:  # an early ``break`` is handled below
                seq, canon, stored_prev, stored_hash = parse(str(data, "utf-8"))
                if seq != expected:
                    part.bad_seq, part.problem = expected, f"sequence {expected} missing (found {seq})"
                    break
                if count == 0:
                    part.first_prev = stored_prev
                if prev is not None and stored_prev != prev:
                    part.bad_seq, part.problem = seq, "previous hash does not match"
                    break
                if sha256((stored_prev + "\n" + canon).encode("utf-8")).hexdigest() != stored_hash:
                    part.bad_seq, part.problem = seq, "event hash does not match its content"
                    break
                prev = stored_hash
                expected += 1
                count += 1
            if part.bad_seq is not None:
                _abandon(cursor.connection, copy)
    finally:
        if gc_was_enabled:
            gc.enable()
    if part.bad_seq is None and expected <= hi:
        # Rows missing at the end of the range (the next range starts after hi).
        part.bad_seq, part.problem = expected, f"sequence {expected} missing"
    part.count = count
    part.last_hash = prev
    return part


def _abandon(connection, copy) -> None:
    """Stop a COPY we no longer need: cancel it on the server, then read what is left."""
    import psycopg

    cancel = getattr(connection, "cancel_safe", None) or connection.cancel
    cancel()
    try:
        while copy.read():
            pass
    except psycopg.errors.QueryCanceled:
        pass


def _run_range(dsn: str, lo: int | None, hi: int, start_seq: int, prev: str | None) -> _Part:
    """One range on its own connection (autocommit: the COPY is its own read-only statement)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c, c.cursor() as cur:
        return _verify_range(cur, lo, hi, start_seq, prev)


def _worker(dsn: str, lo: int, hi: int, out) -> None:
    try:
        out.send(_run_range(dsn, lo, hi, lo + 1, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.send(exc)
    finally:
        out.close()


def _verify_pg(conn: Connection, *, workers: int | None, progress) -> VerifyResult:
    head = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar()
    if head is None:
        return VerifyResult(True, 0, 0, GENESIS)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if head < PARALLEL_MIN_EVENTS or head < 2:
        workers = 1
    workers = max(1, min(workers, head))
    # Ranges: part 0 is seq <= cuts[1] (anything below 1 included), part k is cuts[k] < seq <= cuts[k+1].
    cuts = [head * k // workers for k in range(workers + 1)]

    ctx = None
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    dsn = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    children = []
    for k in range(1, workers):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(dsn, cuts[k], cuts[k + 1], send), daemon=True)
        p.start()
        send.close()
        children.append((p, recv))

    try:
        parts = [_run_range(dsn, None, cuts[1], 1, GENESIS)]
        if progress:
            progress(parts[0].count)
        for p, recv in children:
            got = recv.recv()
            p.join()
            if isinstance(got, BaseException):
                raise got
            parts.append(got)
    finally:
        for p, _ in children:
            if p.is_alive():
                p.terminate()
                p.join()

    # Merge in order: the first problem found, or at a cut the first broken link.
    verified = 0
    prev = GENESIS
    for k, part in enumerate(parts):
        start = 1 if k == 0 else cuts[k] + 1
        # The link across the cut comes first: it is the first check a sequential walk makes at ``start``.
        if k > 0 and part.first_prev is not None and part.first_prev != prev:
            return VerifyResult(False, verified, start - 1, prev, start, "previous hash does not match")
        if part.bad_seq is not None:
            last = part.last_hash if part.count else prev
            return VerifyResult(False, verified + part.count, part.bad_seq - 1, last, part.bad_seq, part.problem)
        verified += part.count
        prev = part.last_hash
    return VerifyResult(True, verified, head, prev)
