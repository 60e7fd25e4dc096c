"""Every log record as one JSON object on one line of stderr, so that an operator's collector
parses every line the portal writes: the request lines, errors, warnings, gunicorn's own.

A record carries ``ts`` (UTC), ``level``, ``logger``, ``msg``, the ``request_id`` of the
request it belongs to (if any), the fields a caller passed with ``extra={"fields": {...}}``
and, for an exception, its type and traceback. JSON escapes every control character, so no
value can forge a line. Exceptions are rendered without SQL parameters and without the
database's DETAIL line, which quote the values a statement carried.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import datetime, timezone

from portal.observability import context

_MARK = "_portal_json"
# Loggers whose INFO lines repeat what the request line says, with the query string in them.
_QUIET = {"werkzeug": logging.WARNING}
_DETAIL = re.compile(r"^DETAIL:.*$", re.MULTILINE)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        rid = context.current.get()
        if rid is not None:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = f"{record.exc_info[0].__module__}.{record.exc_info[0].__qualname__}"
            out["exc"] = _traceback(record.exc_info[1])
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str, separators=(",", ":"))


def _traceback(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if hasattr(e, "hide_parameters"):  # sqlalchemy.exc.StatementError: "[SQL parameters hidden]"
            e.hide_parameters = True
        e = e.__cause__ or e.__context__
    text = "".join(traceback.format_exception(exc))
    return _DETAIL.sub("DETAIL: (hidden)", text)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (gunicorn may redirect it,
    a test may capture it), never to a stream closed since the handler was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def handler() -> logging.Handler:
    h = StderrHandler()
    h.setFormatter(JsonFormatter())
    setattr(h, _MARK, True)
    return h


def configure(level: str = "INFO") -> None:
    """The root logger writes JSON to stderr at ``level``. Idempotent: every app the process
    makes (tests make many) shares the one handler."""
    root = logging.getLogger()
    if not any(getattr(h, _MARK, False) for h in root.handlers):
        root.addHandler(handler())
    root.setLevel(level)
    for name, floor in _QUIET.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))
