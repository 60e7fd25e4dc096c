"""Offline verifier for audit-trail exports (CSV or JSON Lines with a signed manifest).

Needs only Python and the ``cryptography`` package, plus the portal's audit public key::

    python -m crypto.audit_verify EXPORT_FILE PUBLIC_KEY.pem

Exit 0 when the export is intact, 1 naming the first problem: a bad signature, a truncated
file, an event modified, missing, reordered or added. The hash rule is the portal's:
``hash = SHA-256(prev_hash ‖ "\\n" ‖ JSON([seq, occurred_at, actor_id, actor_email, actor_role,
org_id, source_ip, action, target_type, target_id, case_ref, outcome, reason, details]))`` with
compact separators and UTF-8 (portal/audit/trail.py, kept in step by a test).

CSV exports whose manifest says ``"neutralised": true`` are safe to open in a spreadsheet
(OWASP's CSV-injection rule): a cell whose value begins with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return is written with a single quote ``'`` before it, and so is a value that itself
begins with ``'`` or is exactly ``\\N`` (so that the quote, and the NULL marker, stay unambiguous).
The verifier removes that one quote before hashing. JSON Lines is written as is.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import sys
from dataclasses import dataclass
from typing import BinaryIO

from .signing import verify as verify_signature

FIELDS = ("seq", "occurred_at", "actor_id", "actor_email", "actor_role", "org_id", "source_ip", "action",
          "target_type", "target_id", "case_ref", "outcome", "reason", "details", "prev_hash", "hash")
HASHED = FIELDS[:14]
INTS = {"seq", "actor_id", "org_id"}
CSV_NULL = "\\N"
MANIFEST_PREFIX = "#manifest "
GENESIS = "0" * 64
# OWASP CSV injection: a spreadsheet reads a cell beginning with one of these as a formula (or
# strips it). Such a value is written with QUOTE before it; so is a value beginning with QUOTE.
FORMULA_STARTS = frozenset("=+-@\t\r")
QUOTE = "'"
QUOTED_STARTS = FORMULA_STARTS | {QUOTE}


@dataclass
class Result:
    ok: bool
    problem: str | None = None
    count: int = 0

    def __str__(self) -> str:
        return f"ok: {self.count} events verified" if self.ok else f"FAILED: {self.problem}"


try:  # the C encoder behind json.dumps(..., ensure_ascii=False, separators=(",", ":")), set up once
    from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]

    _encode = c_make_encoder(None, None, c_encode_basestring, None, ":", ",", False, False, True)

    def _dumps(values: list) -> str:
        return "".join(_encode(values, 0))
except (ImportError, TypeError):  # pragma: no cover - non-CPython
    def _dumps(values: list) -> str:
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def event_hash(event: dict) -> str:
    values = [event[f] for f in HASHED]
    body = _dumps(values).encode("utf-8")
    return hashlib.sha256(event["prev_hash"].encode("ascii") + b"\n" + body).hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def csv_cell(value: str) -> str:
    """A text value as its CSV cell: ``'`` before one a spreadsheet would take for a formula,
    before one that begins with ``'`` and before the text ``\\N`` (which would read as NULL)."""
    return QUOTE + value if value[:1] in QUOTED_STARTS or value == CSV_NULL else value


def csv_value(cell: str) -> str:
    """The value a neutralised cell was written from (the inverse of ``csv_cell``)."""
    return cell[1:] if cell[:1] == QUOTE else cell


_INT_COLUMNS = tuple(i for i, name in enumerate(FIELDS) if name in INTS)


def _csv_event(row: list[str], neutralised: bool = False) -> dict:
    if len(row) != len(FIELDS):
        raise ValueError("wrong number of columns")
    values: list[str | int | None]
    if neutralised:  # (csv_value, inline)
        values = [None if cell == CSV_NULL else cell[1:] if cell[:1] == QUOTE else cell for cell in row]
    else:  # no quoted cell on the line, or an export written before cells were neutralised
        values = [None if cell == CSV_NULL else cell for cell in row]
    for i in _INT_COLUMNS:
        cell = values[i]
        if cell is not None:
            values[i] = int(cell)
    return dict(zip(FIELDS, values))


def _last_line(f: BinaryIO) -> tuple[bytes, int]:
    """The final line and the offset where it starts, reading backwards (constant memory)."""
    f.seek(0, io.SEEK_END)
    end = f.tell()
    pos, tail = end, b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
        if tail.count(b"\n") >= 2 or pos == 0:
            break
    if not tail.endswith(b"\n"):
        return b"", -1
    body = tail[:-1]
    cut = body.rfind(b"\n")
    return body[cut + 1:], pos + cut + 1


def verify_export(f: BinaryIO | bytes, public_pem: bytes) -> Result:
    """``f``: a binary file (seekable). Streams the events: memory stays flat in the size."""
    if isinstance(f, bytes):
        f = io.BytesIO(f)
    last, start = _last_line(f)
    if start < 0:
        return Result(False, "truncated file: it does not end with a complete line")
    text_ = last.decode("utf-8", "replace")
    trailer = text_[len(MANIFEST_PREFIX):] if text_.startswith(MANIFEST_PREFIX) else text_
    try:
        t = json.loads(trailer)
        manifest, signature = t["manifest"], base64.b64decode(t["signature"])
    except (ValueError, KeyError, TypeError):
        return Result(False, "truncated file: the signed manifest at the end is missing")
    if not verify_signature(public_pem, signature, manifest_bytes(manifest)):
        return Result(False, "bad signature: the manifest was not signed by this key or was changed")
    fmt = manifest.get("format")
    if fmt not in ("csv", "jsonl"):
        return Result(False, "unknown export format in the manifest")
    f.seek(0)
    digest = hashlib.sha256()
    contiguous = not manifest.get("filter")
    neutralised = manifest.get("neutralised") is True
    prev_seq, prev_hash, count, offset = 0, GENESIS, 0, 0
    gap = None
    for n, raw in enumerate(f, start=1):
        if offset >= start:
            break
        offset += len(raw)
        digest.update(raw)
        line = raw[:-1]
        if fmt == "csv" and n == 1:
            if line.decode("utf-8", "replace") != ",".join(FIELDS):
                return Result(False, "the CSV header is missing or changed")
            continue
        try:
            if fmt == "csv":
                event = _csv_event(next(csv.reader([line.decode("utf-8")])), neutralised and b"'" in line)
            else:
                event = json.loads(line)
                if list(event) != list(FIELDS):
                    raise ValueError
        except (ValueError, StopIteration, UnicodeDecodeError):
            return Result(False, f"line {n}: not a well-formed event", count)
        seq = event["seq"]
        if event_hash(event) != event["hash"]:
            return Result(False, f"event {seq} (line {n}) was modified: its hash does not match its content", count)
        if seq == prev_seq:
            return Result(False, f"event {seq} (line {n}) appears twice: an event was added", count)
        if seq < prev_seq:
            return Result(False, f"event {seq} (line {n}) is out of order (after event {prev_seq})", count)
        if contiguous and count == 0 and seq != manifest.get("first_seq"):
            return Result(False, f"events before {seq} are missing", count)
        if contiguous and count and seq != prev_seq + 1:
            # A gap: either missing, or the event turns up later (reordered). Decide on the way.
            if gap is None:
                gap = (prev_seq + 1, n, seq)
        elif contiguous and count and event["prev_hash"] != prev_hash:
            return Result(False, f"event {seq} (line {n}) does not follow event {prev_seq}: added or replaced", count)
        prev_seq, prev_hash, count = seq, event["hash"], count + 1
    if gap is not None:
        return Result(False, f"event {gap[0]} is missing (line {gap[1]} holds event {gap[2]})", count)
    if count != manifest.get("count"):
        return Result(False, f"the export holds {count} events but the manifest says {manifest.get('count')}: "
                             "events were removed or added", count)
    if count and (prev_seq != manifest.get("last_seq") or prev_hash != manifest.get("last_hash")):
        return Result(False, "the last event is not the one the manifest names: the file was cut or extended", count)
    if digest.hexdigest() != manifest.get("sha256"):
        return Result(False, "the content differs from what was signed", count)
    return Result(True, None, count)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m crypto.audit_verify EXPORT_FILE PUBLIC_KEY.pem", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        pem = f.read()
    with open(argv[0], "rb") as f:
        result = verify_export(f, pem)
    print(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
