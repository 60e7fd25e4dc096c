"""The one request path (issue 12): what the trail says about reads and downloads, ids out of
range, unknown channel spellings, and the decision before the body."""
from __future__ import annotations

import io
import json
import os

import pytest
from werkzeug.routing import IntegerConverter

from crypto import DecryptionError
from tests.conftest import audit_events, csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_attachments import _attachments, flip_blob_byte, upload


@pytest.fixture
def filer(app, factory):
    org = factory.org(facility=True)
    user = factory.user("filer", org=org, compartments=("T01",))
    client = app.test_client()
    sign_in(client, user)
    return client


def test_the_receipt_is_an_audited_read(app, filer):
    rid = new_report(filer)
    fill_all(filer, rid)
    submit(filer, rid)
    before = len(audit_events(app, "report.view"))
    assert filer.get(f"/reports/{rid}/receipt").status_code == 200
    views = audit_events(app, "report.view")
    details = views[-1].details
    details = json.loads(details) if isinstance(details, str) else details
    assert len(views) == before + 1 and details["page"] == "receipt"


def test_a_download_is_a_success_only_when_the_last_byte_went_out(app, filer, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    rid = new_report(filer)
    data = b"%PDF-1.4\n" + os.urandom(300_000)
    assert upload(filer, rid, data, "a.pdf").status_code == 302
    [att] = _attachments(app)

    assert filer.get(f"/attachments/{att.id}").get_data() == data
    done = audit_events(app, "attachment.download")
    assert [(e.outcome, e.reason) for e in done] == [("success", None)]

    flip_blob_byte(tmp_path, att)
    resp = filer.get(f"/attachments/{att.id}")
    with pytest.raises(DecryptionError):
        resp.get_data()
    done = audit_events(app, "attachment.download")
    assert [(e.outcome, e.reason) for e in done] == [("success", None), ("failure", "integrity")]
    assert len(audit_events(app, "attachment.download.start")) == 2


def test_a_download_the_client_abandons_is_not_a_success(app, filer, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    rid = new_report(filer)
    assert upload(filer, rid, b"%PDF-1.4\n" + os.urandom(600_000), "a.pdf").status_code == 302
    [att] = _attachments(app)
    resp = filer.get(f"/attachments/{att.id}", buffered=False)
    body = iter(resp.response)
    next(body)
    resp.close()  # the client went away after the first segment
    [event] = audit_events(app, "attachment.download")
    assert (event.outcome, event.reason) == ("failure", "client_gone")


@pytest.mark.parametrize("spelling", ["INTERNAL", "internal%00", "foo", "External"])
def test_unknown_channel_spellings_are_refused_and_recorded(app, filer, spelling):
    rid = new_report(filer)
    token = csrf_of(filer.get("/account").get_data(as_text=True))
    before = len(audit_events(app, "access.denied"))
    resp = filer.post(f"/reports/{rid}/messages/{spelling}", data={"csrf_token": token, "body": "x",
                                                                    "classification": "restricted"})
    assert resp.status_code == 404
    denied = audit_events(app, "access.denied")
    assert len(denied) == before + 1 and denied[-1].reason == "not_found"


def test_no_object_id_gives_a_500(app, client, factory):
    """Every route with an integer in its path, with ids beyond what the database stores."""
    admin = factory.user("admin", compartments=())
    sign_in(client, admin)
    token = csrf_of(client.get("/account").get_data(as_text=True))
    checked = 0
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if not ints:
            continue
        for big in (2**31, 2**63, 10**40):
            values = {name: (big if name in ints else "external") for name in rule.arguments}
            if "step" in rule.arguments:
                values["step"] = "contact"
            url = app.url_map.bind("localhost").build(rule.endpoint, values)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                resp = client.open(url, method=method, data={"csrf_token": token})
                assert resp.status_code in (403, 404), (method, url, resp.status_code)
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("who, path, reason, status", [
    # A company user on METI's internal channel: concealed, before the streamed body.
    ("filer", "messages/internal", "internal", 404),
    # A case worker on a company-only action: refused before CSRF or the form are parsed.
    ("reviewer", "withdraw", "role", 403),
    # A reviewer without the case's compartment, on the external channel.
    ("outsider", "messages/external", "compartment", 403),
])
def test_the_policy_decides_before_a_byte_of_the_body_is_read(app, filer, factory, who, path, reason, status):
    rid = new_report(filer)
    fill_all(filer, rid)
    submit(filer, rid)
    clients = {"filer": filer}
    for name, comps in (("reviewer", ("T01",)), ("outsider", ("T14",))):
        c = app.test_client()
        sign_in(c, factory.user("reviewer", compartments=comps))
        clients[name] = c
    c = clients[who]
    token = csrf_of(c.get("/account").get_data(as_text=True))
    body = b"csrf_token=" + token.encode() + b"&comment=x&body=" + b"x" * (1024 * 1024)
    stream = io.BytesIO(body)
    resp = c.post(f"/reports/{rid}/{path}", input_stream=stream,
                  content_type="application/x-www-form-urlencoded", content_length=len(body))
    assert resp.status_code == status
    assert stream.tell() == 0, f"{stream.tell()} bytes of the body were read before the refusal"
    assert audit_events(app, "access.denied")[-1].reason == reason


@pytest.mark.parametrize("role, url", [
    ("auditor", "/audit/?org=%C2%B2&before=999999999999999999999999&to=9999-12-31&from=0001-01-01"),
    ("auditor", "/audit/?org=99999999999999999999"),
    ("auditor", "/audit/export?to=9999-12-31&org=%C2%B2"),
    ("reviewer", "/review/queue?assignee=%C2%B2&page=%C2%B2"),
    ("reviewer", "/review/queue?assignee=99999999999999999999999&page=-3"),
    ("filer", "/reports?page=100000000000000000000000000000"),
    ("admin", "/admin/outbox?page=%D9%A3"),
])
def test_odd_numbers_in_query_strings_are_no_error(app, factory, role, url):
    """One parser for numbers outside paths: ASCII digits in range, anything else ignored."""
    c = app.test_client()
    sign_in(c, factory.user(role, compartments=("T01",), level="confidential"))
    resp = c.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    resp.get_data()
