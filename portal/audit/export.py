"""Exports of the audit trail in CSV or JSON Lines, streamed in constant memory, each ending
with a signed manifest (filter, count, first and last sequence number and hash, the SHA-256
of everything before it, time, exporter, and the checkpoint made for the export). Times are
UTC with their "Z" (what the hashes cover); the console shows the same instants in JST, and the
manifest says which is which (``time_zone``, ``filter_days``).
``python -m crypto.audit_verify`` checks one offline with only the public key.

CSV is bound for spreadsheets, so no cell may begin a formula (OWASP's CSV-injection rule): a
value beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` before it
(``crypto.audit_verify.csv_cell``; the manifest says ``"neutralised": true`` and the verifier
takes the quote off before hashing). In the manifest line every comma inside a JSON string is
written ``\\u002c``, so that a spreadsheet splitting that line at commas starts no cell with a
value. JSON Lines is not for spreadsheets and is written as is."""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Iterable, Iterator

from sqlalchemy import select

from crypto import SigningKey
from crypto.audit_verify import CSV_NULL, FIELDS, MANIFEST_PREFIX, csv_cell, manifest_bytes
from portal.audit.models import AuditEvent
from portal.audit.trail import format_time
from portal.core.timeutil import JST
from portal.core.web import parse_id

FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class Filter:
    date_from: str = ""
    date_to: str = ""
    actor: str = ""
    org: str = ""
    action: str = ""
    case_ref: str = ""
    outcome: str = ""

    def active(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


def parse_day(value: str | None):
    """A filter's day, or None. Days outside 1900–2999 filter nothing the trail can hold, and
    would overflow a day's end (9999-12-31 + 1 day): they are no bound at all."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date() if value else None
    except ValueError:
        return None
    return day if day is not None and 1900 <= day.year <= 2999 else None


_date = parse_day


def range_problems(date_from: str, date_to: str) -> dict[str, str]:
    """What is wrong with a filter's days, by field ("from", "to"): "not_a_date", or
    "reversed" when the range ends before it starts. The console and the CLI refuse both
    rather than answer with an empty export that reads as "nothing happened"."""
    problems = {}
    for name, text in (("from", date_from), ("to", date_to)):
        try:
            datetime.strptime(text, "%Y-%m-%d") if text else None
        except ValueError:
            problems[name] = "not_a_date"
    d_from, d_to = parse_day(date_from), parse_day(date_to)
    if "to" not in problems and d_from and d_to and d_to < d_from:
        problems["to"] = "reversed"
    return problems


def query(f: Filter):
    stmt = select(*[getattr(AuditEvent, name) for name in FIELDS]).order_by(AuditEvent.seq)
    if f.action:
        stmt = stmt.where(AuditEvent.action.startswith(f.action))
    if f.actor:
        stmt = stmt.where(AuditEvent.actor_email == f.actor.lower())
    if f.outcome in {"success", "denied", "failure"}:
        stmt = stmt.where(AuditEvent.outcome == f.outcome)
    if f.case_ref:
        stmt = stmt.where(AuditEvent.case_ref == f.case_ref)
    if parse_id(f.org) is not None:
        stmt = stmt.where(AuditEvent.org_id == int(f.org))
    d_from, d_to = _date(f.date_from), _date(f.date_to)
    if d_from:
        stmt = stmt.where(AuditEvent.occurred_at >= datetime.combine(d_from, time(), JST))
    if d_to:
        stmt = stmt.where(AuditEvent.occurred_at < datetime.combine(d_to + timedelta(days=1), time(), JST))
    return stmt


try:  # json.dumps(..., ensure_ascii=False, separators=(",", ":")) without its per-call set-up
    from json.encoder import c_encode_basestring, c_make_encoder

    _encode = c_make_encoder(None, None, c_encode_basestring, None, ":", ",", False, False, True)

    def _json(obj: dict) -> str:
        return "".join(_encode(obj, 0))
except (ImportError, TypeError):  # pragma: no cover - non-CPython
    def _json(obj: dict) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _Sink:
    """A file-like ``write`` for csv.writer."""
    __slots__ = ("write",)

    def __init__(self, write) -> None:
        self.write = write


def stream(engine, f: Filter, fmt: str, *, key: SigningKey, exporter: str,
           checkpoint: dict | None, batch: int = 5000) -> Iterator[bytes]:
    """Reads on its own connection (a snapshot, never the write lock), in batches."""
    with engine.connect().execution_options(read_only_snapshot=True) as conn:
        yield from _stream(conn, f, fmt, key=key, exporter=exporter, checkpoint=checkpoint, batch=batch)


def _stream(conn, f: Filter, fmt: str, *, key: SigningKey, exporter: str,
            checkpoint: dict | None, batch: int) -> Iterator[bytes]:
    if fmt not in FORMATS:
        raise ValueError(fmt)
    digest = hashlib.sha256()
    count, first, last = 0, None, None
    if fmt == "csv":
        head = (",".join(FIELDS) + "\n").encode("utf-8")
        digest.update(head)
        yield head
    result = conn.execute(query(f).execution_options(stream_results=True, yield_per=batch))
    # One csv.writer for the whole export, writing each row's line into a list; the lines of a
    # batch are joined, encoded and hashed once (the same bytes as line by line).
    lines: list[str] = []
    writer = csv.writer(_Sink(lines.append), lineterminator="\n")
    for part in result.partitions(batch):
        if not part:
            continue
        if fmt == "csv":  # every text cell through csv_cell: about 1.5 µs an event
            for row in part:
                values = [CSV_NULL if v is None else csv_cell(v) if v.__class__ is str else v for v in row]
                values[1] = format_time(_as_utc(row[1]))
                writer.writerow(values)
        else:
            for row in part:
                values = list(row)
                values[1] = format_time(_as_utc(values[1]))
                lines.append(_json(dict(zip(FIELDS, values))) + "\n")
        chunk = "".join(lines).encode("utf-8")
        lines.clear()
        digest.update(chunk)
        if first is None:
            first = (part[0][0], part[0][-1])
        last = (part[-1][0], part[-1][-1])
        count += len(part)
        yield chunk
    manifest = {
        "format": fmt, "filter": f.active(), "count": count,
        "first_seq": first[0] if first else None, "first_hash": first[1] if first else None,
        "last_seq": last[0] if last else None, "last_hash": last[1] if last else None,
        "sha256": digest.hexdigest(), "exported_at": format_time(datetime.now(timezone.utc)),
        "exporter": exporter, "key_id": key.key_id, "checkpoint": checkpoint,
        # Said outright, as the console shows the same instants in JST: every time in the export
        # (occurred_at, exported_at) is UTC, ISO 8601 with its "Z"; the hashes cover that form.
        "time_zone": "UTC", "filter_days": "JST",  # the from/to days are Japan's, as in the console
    }
    if fmt == "csv":
        manifest["neutralised"] = True
    trailer = json.dumps({"manifest": manifest, "signature": base64.b64encode(key.sign(manifest_bytes(manifest))).decode()},
                         ensure_ascii=False, separators=(",", ":"))
    if fmt == "csv":
        trailer = _JSON_STRING.sub(lambda m: m.group(0).replace(",", "\\u002c"), trailer)
    yield ((MANIFEST_PREFIX if fmt == "csv" else "") + trailer + "\n").encode("utf-8")


# A JSON string token (json.dumps escapes every quote and backslash inside one).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _as_utc(value):
    if isinstance(value, str):  # SQLite through a Core select of the column: still processed, but be safe
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def write_private(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``path`` readable by its owner only (0600, whatever the umask or an
    earlier file's mode: the trail names people, addresses and cases). The file appears whole,
    under its name, only once everything is written; a failure half-way leaves nothing."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".part", dir=os.path.dirname(os.path.abspath(path)))
    n = 0
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                n += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return n
