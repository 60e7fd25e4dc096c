"""The bare stack the portal is measured against (issue 20): Flask, psycopg and Jinja, nothing between.

It serves the same database as the portal under test (the benchmarks start it with the same
gunicorn settings, in the same run) and does the same work each measured page does, the
thinnest correct way:

    GET /livez            the trivial route
    GET /session          the session row looked up by the SHA-256 of the cookie's token (one
                          indexed query on ``user_sessions``); 401 without a live one
    GET /reports          session lookup, the organisation's total from ``report_tallies`` (the
                          way the portal counts), the 50 newest reports with the list's columns
                          (organisation, technology, assignee joined; the sealed title opened
                          row by row with the field key), one Jinja table
    GET /queue            the same for a case worker: every submitted case the clearance level
                          reads, newest first (``status``, ``sort=transfer`` as the portal's)
    GET /case/<id>        session lookup, the case row, its messages (bodies opened), a page

No policy, no audit, no i18n, no CSRF, no ORM: this is the floor, not a portal. Settings come
from the environment: REFERENCE_DATABASE_URL, REFERENCE_FIELD_KEYS (a file of ``id hex-key``
lines: the field data keys, written by the benchmark into its throwaway instance folder).
"""
from __future__ import annotations

import hashlib
import os
import threading
from datetime import datetime, timedelta, timezone

import psycopg
from flask import Flask, abort, request
from jinja2 import Environment

from crypto.fields import unseal

KEY_ID_SIZE = 4  # portal.encryption.sealed: the field key's id before each sealed blob
COOKIE = "ttr_session"
IDLE = timedelta(minutes=30)

app = Flask(__name__)
_local = threading.local()
_keys: dict[int, bytes] = {}


def _load_keys() -> None:
    path = os.environ.get("REFERENCE_FIELD_KEYS")
    if path:
        with open(path, encoding="ascii") as f:
            for line in f:
                kid, key = line.split()
                _keys[int(kid)] = bytes.fromhex(key)


_load_keys()


def conn() -> psycopg.Connection:
    """One connection per worker thread, kept open (what a pool hands a sync worker)."""
    c = getattr(_local, "conn", None)
    if c is None or c.closed:
        c = _local.conn = psycopg.connect(os.environ["REFERENCE_DATABASE_URL"], autocommit=True)
    return c


def open_field(table: str, pk: int, column: str, blob: bytes | None) -> str:
    if blob is None:
        return ""
    blob = bytes(blob)
    return unseal(_keys[int.from_bytes(blob[:KEY_ID_SIZE], "big")], blob[KEY_ID_SIZE:],
                  f"{table}/{pk}/{column}".encode())


def signed_in() -> tuple[int, int]:
    """(user id, organisation id) of the cookie's live session, or 401."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        abort(401)
    row = conn().execute(
        "SELECT s.user_id, u.organisation_id, s.last_seen_at FROM user_sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id = %s AND u.active", (hashlib.sha256(token.encode("ascii")).hexdigest(),)).fetchone()
    if row is None or datetime.now(timezone.utc) - row[2] > IDLE:
        abort(401)
    return row[0], row[1]


LIST_COLUMNS = ("r.id, o.name, r.status, r.reference, r.title, t.code, t.name_ja, r.destination_country, "
                "r.updated_at, a.name")
LIST_FROM = ("FROM reports r JOIN organisations o ON o.id = r.organisation_id "
             "LEFT JOIN technologies t ON t.id = r.technology_id LEFT JOIN users a ON a.id = r.assignee_id ")

_env = Environment(autoescape=True)
PAGE = _env.from_string("""<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><main><h1>{{ title }}</h1><p>{{ "{:,}".format(total) }} 件</p>
<table><thead><tr><th>参照番号</th><th>相手方</th><th>技術</th><th>提供先</th><th>状態</th><th>組織</th><th>担当</th><th>更新</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="/reports/{{ r[0] }}">{{ r[3] or "下書き #%d" % r[0] }}</a></td><td>{{ r[4] }}</td>
<td>{{ r[5] }} {{ r[6] }}</td><td>{{ r[7] }}</td><td>{{ r[2] }}</td><td>{{ r[1] }}</td><td>{{ r[9] or "" }}</td>
<td>{{ r[8].strftime("%Y年%m月%d日") }}</td></tr>
{% endfor %}</tbody></table></main></body></html>""")
CASE = _env.from_string("""<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{{ c[3] }}</title></head>
<body><main><h1>{{ c[3] }} {{ c[4] }}</h1><p>{{ c[1] }} / {{ c[5] }} {{ c[6] }} / {{ c[7] }} / {{ c[2] }}</p>
<ol>{% for m in messages %}<li class="message" id="m{{ m[0] }}"><p>{{ m[1] }} · {{ m[3] }} · {{ m[2].strftime("%Y-%m-%d %H:%M") }}</p><p>{{ m[4] }}</p></li>
{% endfor %}</ol></main></body></html>""")


def _rows(cur) -> list[tuple]:
    return [(*r[:4], open_field("reports", r[0], "title", r[4]), *r[5:]) for r in cur]


@app.get("/livez")
def livez():
    return "ok\n", 200, {"Content-Type": "text/plain"}


@app.get("/session")
def session_lookup():
    user_id, _org = signed_in()
    return f"user {user_id}\n", 200, {"Content-Type": "text/plain"}


@app.get("/reports")
def reports():
    _user, org = signed_in()
    c = conn()
    status = request.args.get("status")
    extra, tally_extra, params = ("AND r.status = %s", "AND status = %s", (org, status)) if status else ("", "", (org,))
    total = c.execute(f"SELECT COALESCE(sum(n), 0) FROM report_tallies WHERE organisation_id = %s {tally_extra}",
                      params).fetchone()[0]
    rows = _rows(c.execute(f"SELECT {LIST_COLUMNS} {LIST_FROM} WHERE r.organisation_id = %s {extra} "
                           "ORDER BY r.updated_at DESC, r.id DESC LIMIT 50", params))
    return PAGE.render(title="事前報告", total=total, rows=rows)


LEVELS = ("public", "restricted", "confidential", "csi")
QUEUE_ORDER = {"submitted": "r.submitted_at DESC, r.id DESC", "transfer": "r.planned_transfer_date, r.id"}


@app.get("/queue")
def queue():
    user, _org = signed_in()
    c = conn()
    level = c.execute("SELECT level FROM clearances WHERE user_id = %s AND superseded_at IS NULL AND revoked_at IS NULL "
                      "ORDER BY granted_at DESC, id DESC LIMIT 1", (user,)).fetchone()
    levels = list(LEVELS[: LEVELS.index(level[0]) + 1]) if level else []
    status = request.args.get("status")
    where, tally, params = "r.status <> 'draft' AND r.classification = ANY(%s)", \
        "status <> 'draft' AND classification = ANY(%s)", [levels]
    if status:
        where, tally = where + " AND r.status = %s", tally + " AND status = %s"
        params.append(status)
    total = c.execute(f"SELECT COALESCE(sum(n), 0) FROM report_tallies WHERE {tally}", params).fetchone()[0]
    order = QUEUE_ORDER.get(request.args.get("sort", ""), QUEUE_ORDER["submitted"])
    rows = _rows(c.execute(f"SELECT {LIST_COLUMNS} {LIST_FROM} WHERE {where} ORDER BY {order} LIMIT 50", params))
    return PAGE.render(title="審査キュー", total=total, rows=rows)


@app.get("/case/<int:report_id>")
def case(report_id: int):
    signed_in()
    c = conn()
    row = c.execute(f"SELECT {LIST_COLUMNS} {LIST_FROM} WHERE r.id = %s", (report_id,)).fetchone()
    if row is None:
        abort(404)
    messages = [(m[0], m[1], m[2], m[3], open_field("messages", m[0], "body", m[4])) for m in c.execute(
        "SELECT m.id, m.channel, m.created_at, u.name, m.body FROM messages m JOIN users u ON u.id = m.author_id "
        "WHERE m.report_id = %s ORDER BY m.id", (report_id,))]
    return CASE.render(c=_rows([row])[0], messages=messages)
