"""Logs and metrics (issue 14 item 9, portal/observability): one JSON line per request with no
content, the request id, /metrics for loopback or a token only, counters that move, and the
multiprocess mode under a real gunicorn with two workers."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from tests.conftest import PASSWORD, csrf_of, sign_in
from tests.reports_helpers import good_values, new_report

MARKER = "ZQX-OBSERVE-7c41e9"
TOKEN = "m" * 20 + "-metrics-token-for-tests"
UPLOAD_ROUTE = "/reports/<int:report_id>/attachments"


def json_lines(text: str) -> list[dict]:
    """Every non-empty line must be one JSON object (what an operator's collector expects)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def request_lines(text: str, rid: str | None = None) -> list[dict]:
    return [r for r in json_lines(text) if r.get("event") == "request" and (rid is None or r["request_id"] == rid)]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def filer(app, factory):
    org = factory.org(facility=True)
    user = factory.user("filer", org=org, compartments=("T01",))
    client = app.test_client()
    sign_in(client, user)
    return client, user


def _upload(client, rid: int, data: bytes, name: str, *, query: str = "", headers: dict | None = None):
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    resp = client.post(f"/reports/{rid}/attachments{query}", content_type="multipart/form-data", headers=headers or {},
                       data={"csrf_token": csrf_of(page), "classification": "restricted",
                             "file": (io.BytesIO(data), name)})
    resp.get_data()  # the line is written when the body has gone out
    return resp


# ---------------------------------------------------------------- the request line

def test_a_request_is_one_json_line_with_its_fields_and_no_content(app, filer, capsys):
    client, user = filer
    rid = new_report(client)
    capsys.readouterr()
    values = {**good_values("counterparty"), "counterparty_name": f"{MARKER}-form-value"}
    page = client.get(f"/reports/{rid}/edit/counterparty")
    token = csrf_of(page.get_data(as_text=True))
    resp = client.post(f"/reports/{rid}/edit/counterparty?q={MARKER}-query&token=abc",
                       data={**values, "csrf_token": token}, headers={"X-Request-ID": "obs-test-0001"})
    assert resp.status_code == 302
    resp.get_data()
    pdf = b"%PDF-1.7\n" + MARKER.encode() + b"-file-content\n%%EOF\n"
    up = _upload(client, rid, pdf, f"{MARKER}-filename.pdf", query=f"?next={MARKER}-query2",
                 headers={"X-Request-ID": "obs-test-0002"})
    assert up.status_code == 302, up.get_data(as_text=True)[-1000:]
    err = capsys.readouterr().err

    [line] = request_lines(err, "obs-test-0001")
    assert line["method"] == "POST" and line["route"] == "/reports/<int:report_id>/edit/<step>"
    assert line["args"] == {"report_id": rid}  # ids only: the step (a string) is not echoed
    assert line["status"] == 302 and line["user_id"] == user.id and line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert isinstance(line["bytes"], int) and line["level"] == "INFO" and line["logger"] == "portal.request"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["ts"])
    assert "cut_off" not in line
    [up_line] = request_lines(err, "obs-test-0002")
    assert up_line["route"] == UPLOAD_ROUTE and up_line["status"] == 302 and up_line["user_id"] == user.id

    # No content anywhere in what the portal wrote: form values, query strings, file names and
    # contents, the CSRF token, the session cookie, the user's e-mail or password.
    cookie = client.get_cookie("ttr_session").value
    for secret in (MARKER, token, cookie, user.email, PASSWORD, "token=abc"):
        assert secret not in err, secret


def test_the_check_for_content_can_fail(app, capsys):
    """The assertion above reads what the logging module wrote: a record with a value in it
    is found there."""
    logging.getLogger("portal.test").warning("value %s", MARKER)
    assert MARKER in capsys.readouterr().err


def test_every_line_of_a_request_carries_its_id_and_errors_are_json(app, capsys):
    """Records logged during a request (here an unexpected error) carry the request's id and
    are JSON, the exception's traceback included, without SQL parameters."""
    from flask import Flask

    from portal.observability import middleware

    probe = Flask("probe")

    @probe.route("/boom")
    def boom():
        logging.getLogger("portal.probe").warning("inside the view")
        try:
            raise sa.exc.IntegrityError("INSERT INTO t VALUES (?)", (MARKER,),
                                         Exception("duplicate key\nDETAIL:  Key (x)=(y) already exists."))
        except sa.exc.IntegrityError:
            logging.getLogger("portal.probe").exception("failed")
        return "done"

    middleware.init_app(probe)
    resp = probe.test_client().get("/boom", headers={"X-Request-ID": "probe-1"})
    assert resp.get_data() == b"done" and resp.headers["X-Request-ID"] == "probe-1"
    records = json_lines(capsys.readouterr().err)
    inside = next(r for r in records if r["msg"] == "inside the view")
    failed = next(r for r in records if r["msg"] == "failed")
    assert inside["request_id"] == failed["request_id"] == "probe-1"
    assert failed["exc_type"] == "sqlalchemy.exc.IntegrityError" and "Traceback" in failed["exc"]
    assert MARKER not in failed["exc"] and "Key (x)=(y)" not in failed["exc"]
    assert records[-1]["event"] == "request" and records[-1]["request_id"] == "probe-1"


def test_the_request_id_round_trips_and_a_hostile_one_is_replaced(client, capsys):
    resp = client.get("/livez", headers={"X-Request-ID": "abc-123.def_4:5"})
    resp.get_data()
    assert resp.headers["X-Request-ID"] == "abc-123.def_4:5"
    made = client.get("/livez")
    made.get_data()
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    for hostile in ('x" injected="1', "a" * 65, "id1, id2", "ümlaut", "-leading", "<script>", ""):
        r = client.get("/livez", headers={"X-Request-ID": hostile})
        r.get_data()
        rid = r.headers["X-Request-ID"]
        assert rid != hostile and re.fullmatch(r"[0-9a-f]{32}", rid), hostile
    lines = request_lines(capsys.readouterr().err)
    assert [l["request_id"] for l in lines[:2]] == ["abc-123.def_4:5", made.headers["X-Request-ID"]]
    assert len(lines) == 9 and len({l["request_id"] for l in lines}) == 9
    assert all(l["route"] == "/livez" and l["status"] == 200 for l in lines)


def test_an_unmatched_path_is_logged_without_it(client, capsys):
    resp = client.get(f"/no/such/{MARKER}/page")
    resp.get_data()
    assert resp.status_code == 404
    err = capsys.readouterr().err
    [line] = request_lines(err)
    assert line["route"] is None and line["status"] == 404 and MARKER not in err


def test_a_download_cut_off_is_logged_when_the_stream_ends(app, filer, capsys):
    client, _ = filer
    rid = new_report(client)
    data = b"%PDF-1.7\n" + os.urandom(600_000) + b"\n%%EOF\n"
    assert _upload(client, rid, data, "big.pdf").status_code == 302
    from portal import db
    from portal.attachments.models import Attachment

    with app.app_context():
        att_id = db.session().execute(sa.select(Attachment.id)).scalar_one()
    cut = sample("portal_http_responses_cut_off_total", route="/attachments/<int:attachment_id>")
    complete = sample("portal_downloads_total", kind="attachment", outcome="complete")
    sent = sample("portal_download_bytes_total", kind="attachment")
    capsys.readouterr()

    resp = client.get(f"/attachments/{att_id}", headers={"X-Request-ID": "dl-cut"})
    first = next(iter(resp.response))
    assert 0 < len(first) < len(data)
    assert not request_lines(capsys.readouterr().err, "dl-cut")  # still streaming: no line yet
    time.sleep(0.05)
    resp.close()  # what the server does when the client goes away
    [line] = request_lines(capsys.readouterr().err, "dl-cut")
    assert line["status"] == 200 and line["cut_off"] is True and line["bytes"] == len(first)
    assert line["duration_ms"] >= 50
    assert sample("portal_http_responses_cut_off_total", route="/attachments/<int:attachment_id>") == cut + 1

    whole = client.get(f"/attachments/{att_id}", headers={"X-Request-ID": "dl-whole"})
    assert whole.get_data() == data
    [line] = request_lines(capsys.readouterr().err, "dl-whole")
    assert "cut_off" not in line and line["bytes"] == len(data)
    assert sample("portal_downloads_total", kind="attachment", outcome="complete") == complete + 1
    assert sample("portal_download_bytes_total", kind="attachment") == sent + len(first) + len(data)


# ---------------------------------------------------------------- /metrics: who may scrape

@pytest.fixture
def metrics_settings(app):
    s = app.config["SETTINGS"]
    old = (s.metrics_token, s.behind_proxy)
    yield s
    s.metrics_token, s.behind_proxy = old


def _scrape(client, addr="127.0.0.1", **headers):
    resp = client.get("/metrics", environ_base={"REMOTE_ADDR": addr}, headers=headers)
    resp.get_data()
    return resp


def test_metrics_are_served_to_loopback_only_without_a_session(app, client, metrics_settings, capsys):
    from portal import db
    from portal.auth.models import UserSession

    for addr in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        resp = _scrape(client, addr)
        assert resp.status_code == 200, addr
        assert resp.content_type.startswith("text/plain; version=")
        assert b"portal_http_requests_total" in resp.data and b"portal_keyring_keks" in resp.data
        assert "Set-Cookie" not in resp.headers and resp.headers["Cache-Control"] == "no-store"
    for addr in ("203.0.113.9", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "", "localhost"):
        resp = _scrape(client, addr)
        assert resp.status_code == 404 and b"portal_" not in resp.data, addr
        assert "Set-Cookie" not in resp.headers
    with app.app_context():
        assert db.session().execute(sa.select(sa.func.count()).select_from(UserSession)).scalar_one() == 0
    # A served scrape is not logged (one line every 15 s would be noise); a refused one is.
    lines = request_lines(capsys.readouterr().err)
    assert [l["status"] for l in lines] == [404] * 6 and {l["route"] for l in lines} == {"/metrics"}


def test_metrics_with_a_token(client, metrics_settings):
    metrics_settings.metrics_token = TOKEN
    outside = "203.0.113.9"
    assert _scrape(client, outside, Authorization=f"Bearer {TOKEN}").status_code == 200
    assert _scrape(client, outside, Authorization=f"bearer {TOKEN}").status_code == 200
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN, "Bearer ü"):
        assert _scrape(client, outside, Authorization=wrong).status_code == 404, wrong
        # A wrong token is refused from loopback too: presenting one is asking to be checked.
        assert _scrape(client, Authorization=wrong).status_code == 404, wrong
    assert _scrape(client, outside).status_code == 404


def test_behind_a_proxy_only_the_token_opens_metrics(client, metrics_settings):
    metrics_settings.behind_proxy = True
    metrics_settings.metrics_token = None
    assert _scrape(client).status_code == 404  # the proxy itself is on loopback
    assert _scrape(client, **{"X-Forwarded-For": "127.0.0.1"}).status_code == 404
    metrics_settings.metrics_token = TOKEN
    assert _scrape(client, Authorization=f"Bearer {TOKEN}").status_code == 200
    assert _scrape(client).status_code == 404


def test_a_short_token_is_refused_at_start():
    from portal.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="PORTAL_METRICS_TOKEN"):
        Settings.from_env({"PORTAL_METRICS_TOKEN": "short", "PORTAL_ENV": "test"})
    assert Settings.from_env({"PORTAL_METRICS_TOKEN": "", "PORTAL_ENV": "test"}).metrics_token is None
    with pytest.raises(ConfigError, match="PORTAL_LOG_LEVEL"):
        Settings.from_env({"PORTAL_LOG_LEVEL": "chatty", "PORTAL_ENV": "test"})


# ---------------------------------------------------------------- counters and state

def _scraped(client) -> dict[str, float]:
    resp = _scrape(client)
    assert resp.status_code == 200
    out = {}
    for line in resp.get_data(as_text=True).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_counters_move_with_uploads_downloads_and_audit_appends(app, filer):
    client, _ = filer
    rid = new_report(client)
    route = f'route="{UPLOAD_ROUTE}"'
    before = _scraped(client)
    audit_ok = sample("portal_audit_appends_total", action="attachment.upload", outcome="success")
    audit_failed = sample("portal_audit_appends_total", action="attachment.upload", outcome="failure")
    refused = sample("portal_uploads_refused_total", reason="no_file")

    data = b"%PDF-1.7\n" + os.urandom(5000) + b"\n%%EOF\n"
    assert _upload(client, rid, data, "a.pdf").status_code == 302
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    empty = client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                        data={"csrf_token": csrf_of(page), "classification": "restricted"})
    assert empty.status_code == 400
    empty.get_data()

    after = _scraped(client)
    assert after["portal_uploads_total"] == before["portal_uploads_total"] + 1
    assert after["portal_upload_bytes_total"] == before["portal_upload_bytes_total"] + len(data)
    assert sample("portal_uploads_refused_total", reason="no_file") == refused + 1
    assert sample("portal_audit_appends_total", action="attachment.upload", outcome="success") == audit_ok + 1
    assert sample("portal_audit_appends_total", action="attachment.upload", outcome="failure") == audit_failed + 1
    key = f'portal_http_requests_total{{method="POST",{route},status="3xx"}}'
    assert after[key] == before.get(key, 0) + 1
    hist = f'portal_http_request_duration_seconds_count{{method="POST",{route},status="3xx"}}'
    assert after[hist] == before.get(hist, 0) + 1


def test_key_and_job_state_at_scrape_time(app, filer):
    from portal import db
    from portal.attachments.models import Attachment
    from portal.encryption.opener import keyring_for
    from portal.review.jobs import run_daily
    from portal.core.timeutil import today_jst

    client, _ = filer
    rid = new_report(client)
    for i in range(2):
        assert _upload(client, rid, b"%PDF-1.7\n" + os.urandom(100) + b"\n%%EOF\n", f"{i}.pdf").status_code == 302
    keyring = keyring_for(app.config["SETTINGS"].keyring_path)
    active = keyring.active_id
    got = _scraped(client)
    assert got["portal_keyring_up"] == 1 and got["portal_state_database_up"] == 1
    assert got["portal_keyring_keks"] == len(keyring.ids())
    assert 0 <= got["portal_keyring_active_kek_age_seconds"] < 10 * 365 * 86400
    assert got[f'portal_wrapped_keys{{holder="attachments",kek="{active}"}}'] == 2
    assert got["portal_wrapped_keys_unknown_kek"] == 0
    assert not any(k.startswith("portal_job_last_finished") for k in got)

    with app.app_context():
        s = db.session()
        s.execute(sa.update(Attachment).where(Attachment.id == s.execute(sa.select(sa.func.min(Attachment.id)))
                                               .scalar_one()).values(kek_id="kek-19990101-00000000"))
        s.commit()
        run_daily(s, app.config["SETTINGS"], today_jst())
    got = _scraped(client)
    assert got["portal_wrapped_keys_unknown_kek"] == 1
    assert got['portal_wrapped_keys{holder="attachments",kek="kek-19990101-00000000"}'] == 1
    assert abs(got['portal_job_last_finished_timestamp_seconds{job="daily"}'] - time.time()) < 300
    assert got['portal_job_unfinished_runs{job="daily"}'] == 0


# ---------------------------------------------------------------- under gunicorn, two workers

def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_gunicorn_two_workers_add_up_in_multiprocess_mode(database_url, instance_dir, tmp_path):
    """The project's gunicorn configuration, two workers: every request is one JSON line from
    the worker that served it, and /metrics (answered by either) adds both workers up."""
    from tests.live_server import Server, server_env

    from portal.observability.gunicorn_hooks import default_metrics_dir

    # A server of this host killed earlier left its directory: the next start removes it.
    stale = default_metrics_dir(instance_dir, pid=2**22 + 12345)
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"x")
    env = {k: v for k, v in server_env(database_url, instance_dir).items() if not k.startswith("PROMETHEUS_")}
    with Server(env, tmp_path, workers=2, args=("--threads", "2")) as server:
        assert not stale.exists()
        base = f"http://127.0.0.1:{server.port}"
        sent = 0
        lock = threading.Lock()

        def burst(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                with lock:
                    sent += 1
                    rid = f"obs-gw-{sent}"
                req = urllib.request.Request(f"{base}/livez?x={MARKER}", headers={"X-Request-ID": rid})
                with urllib.request.urlopen(req, timeout=10) as r:
                    assert r.status == 200 and r.headers["X-Request-ID"] == rid

        def livez_lines() -> list[dict]:
            # The start-up check's requests too: the metric counts them.
            return [l for l in request_lines(server.log_text()) if l["route"] == "/livez"]

        def mine(lines: list[dict]) -> int:
            return sum(1 for l in lines if l["request_id"].startswith("obs-gw-"))

        # Fresh connections from several threads until both workers have served some (the
        # kernel hands each connection to whichever worker accepts it first).
        for _ in range(20):
            threads = [threading.Thread(target=burst, args=(10,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len({l["pid"] for l in livez_lines()}) >= 2:
                break
        # A line (and the counters) are written just after the last byte went out.
        deadline = time.monotonic() + 10
        while mine(lines := livez_lines()) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        by_pid: dict[int, int] = {}
        for l in lines:
            by_pid[l["pid"]] = by_pid.get(l["pid"], 0) + 1
        assert len(by_pid) == 2, by_pid
        assert mine(lines) == sent  # every request has its line

        status, body = _get(f"{base}/metrics")
        assert status == 200
        text = body.decode()
        m = re.search(r'^portal_http_requests_total\{method="GET",route="/livez",status="2xx"\} (\S+)$', text,
                      re.MULTILINE)
        assert m and float(m.group(1)) == len(lines), (len(lines), by_pid)
        assert float(m.group(1)) > max(by_pid.values())  # both workers' sum, not the answering one's
        assert re.search(r"^portal_keyring_keks 1\.0$", text, re.MULTILINE)
        [mdir] = (instance_dir / "metrics").iterdir()
        assert {f"counter_{pid}.db" for pid in by_pid} <= {p.name for p in mdir.iterdir()}
        req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer wrong"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 404
    log = server.log_text()
    records = json_lines(log)  # gunicorn's own lines are JSON too, and there is no access log
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["msg"] for r in records)
    assert MARKER not in log
    assert not any((instance_dir / "metrics").iterdir())  # the server's metrics directory went with it


def test_a_signed_in_request_that_never_asks_who_is_signed_in_still_names_the_user(app, filer, capsys):
    """The favicon builds no user (portal.auth.principal): the line takes the id from the
    session read at the start of the request, and a signed-out request names nobody."""
    client, user = filer
    capsys.readouterr()
    client.get("/favicon.ico", headers={"X-Request-ID": "obs-test-favicon-1"}).get_data()
    app.test_client().get("/favicon.ico", headers={"X-Request-ID": "obs-test-favicon-2"}).get_data()
    err = capsys.readouterr().err
    [line] = request_lines(err, "obs-test-favicon-1")
    assert line["route"] == "/favicon.ico" and line["user_id"] == user.id
    [anon] = request_lines(err, "obs-test-favicon-2")
    assert anon["user_id"] is None
