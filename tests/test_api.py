"""The API (issue 19): filing through /api/v1 with the web's rules, tokens, problems,
idempotency, ETags and rate limits. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json

import pytest

from tests.api_helpers import auth, complete_fields, issue_token, patch_json, post_json
from tests.conftest import audit_events


@pytest.fixture
def filer(factory):
    org = factory.org(facility=True)
    admin = factory.user("org_admin", org=org)
    user = factory.user("filer", org=org)
    return user, admin


def _token(app, filer, **kw):
    user, admin = filer
    return issue_token(app, user, admin=admin, **kw)


def test_file_a_report_end_to_end(app, client, filer):
    token_id, token = _token(app, filer)
    resp = post_json(client, "/api/v1/reports", token, complete_fields())
    assert resp.status_code == 201, resp.get_json()
    report = resp.get_json()
    assert resp.headers["Location"] == f"/api/v1/reports/{report['id']}"
    assert report["status"] == "draft" and report["incomplete_steps"] == []
    assert report["content"]["contract_value"] == 120000000
    assert report["created_at"].endswith("+00:00")  # RFC 3339 with an offset
    pdf = b"%PDF-1.4\n" + b"x" * 2000
    up = client.post(f"/api/v1/reports/{report['id']}/attachments", headers=auth(token),
                     data={"file": (io.BytesIO(pdf), "contract.pdf"), "classification": "restricted"},
                     content_type="multipart/form-data")
    assert up.status_code == 201, up.get_json()
    att = up.get_json()
    got = client.get(att["download_url"], headers=auth(token))
    assert got.status_code == 200 and got.data == pdf
    sub = post_json(client, f"/api/v1/reports/{report['id']}/submit", token, {"attest": True},
                    **{"Idempotency-Key": "submit-1"})
    assert sub.status_code == 200, sub.get_json()
    assert sub.get_json()["status"] == "submitted" and sub.get_json()["reference"].startswith("TTR-")
    # A retried submission files once: the same answer, one version, one submit event.
    again = post_json(client, f"/api/v1/reports/{report['id']}/submit", token, {"attest": True},
                      **{"Idempotency-Key": "submit-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["version_count"] == 1
    assert len(audit_events(app, "report.submit")) == 1
    listed = client.get("/api/v1/reports", headers=auth(token)).get_json()
    assert [r["id"] for r in listed["items"]] == [report["id"]]
    # Every use names the token in the audit trail.
    events = [e for e in audit_events(app) if e.action in ("report.view", "attachment.download.start")]
    assert events and all(json.loads(e.details)["api_token_id"] == token_id for e in events)
    uses = audit_events(app, "api.token.use")
    assert len(uses) == 6 and {u.target_id for u in uses} == {str(token_id)}


def test_the_same_rules_as_the_web_field_by_field(app, client, filer):
    _id, token = _token(app, filer)
    bad = {**complete_fields(), "destination_country": "JP", "contact_email": "not an address"}
    resp = post_json(client, "/api/v1/reports", token, bad)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    fields = {e["field"] for e in resp.get_json()["errors"]}
    assert {"destination_country", "contact_email"} <= fields
    # Nothing was created.
    assert client.get("/api/v1/reports", headers=auth(token)).get_json()["items"] == []
    assert not audit_events(app, "report.create") or all(e.outcome == "failure" for e in audit_events(app, "report.create"))


def test_a_body_that_does_not_match_the_schema_is_refused(app, client, filer):
    _id, token = _token(app, filer)
    for body in ({"transfer_form": "teleport"}, {"unknown": 1}, [1, 2], {"description": "a\x00b"},
                 {"shareholding": 101}):
        resp = post_json(client, "/api/v1/reports", token, body)
        assert resp.status_code == 422, (body, resp.get_json())
        assert resp.get_json()["errors"], body
    resp = client.post("/api/v1/reports", data="{not json", content_type="application/json", headers=auth(token))
    assert resp.status_code == 400 and resp.get_json()["reason"] == "bad_json"
    resp = client.post("/api/v1/reports", data="x=1", content_type="application/x-www-form-urlencoded",
                       headers=auth(token))
    assert resp.status_code == 415
    assert client.get("/api/v1/reports", headers=auth(token)).get_json()["items"] == []
    assert all(e.outcome == "failure" for e in audit_events(app, "report.create"))


def test_etags_guard_drafts(app, client, filer):
    _id, token = _token(app, filer)
    created = post_json(client, "/api/v1/reports", token, {"contact_phone": "03-0000-0000"})
    rid, tag = created.get_json()["id"], created.headers["ETag"]
    url = f"/api/v1/reports/{rid}"
    missing = patch_json(client, url, token, {"counterparty_name": "X"})
    assert missing.status_code == 428
    ok = patch_json(client, url, token, {"contact_phone": "03-1111-1111"}, **{"If-Match": tag})
    assert ok.status_code == 200 and ok.headers["ETag"] != tag
    stale = patch_json(client, url, token, {"contact_phone": "03-2222-2222"}, **{"If-Match": tag})
    assert stale.status_code == 412 and stale.get_json()["reason"] == "etag_mismatch"
    now = client.get(url, headers=auth(token)).get_json()
    assert now["content"]["contact_phone"] == "03-1111-1111"


def test_a_replayed_key_with_a_different_body_changes_nothing(app, client, filer):
    _id, token = _token(app, filer)
    first = post_json(client, "/api/v1/reports", token, {"contact_phone": "1"}, **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    replay = post_json(client, "/api/v1/reports", token, {"contact_phone": "1"}, **{"Idempotency-Key": "k1"})
    assert replay.status_code == 201 and replay.get_json()["id"] == first.get_json()["id"]
    other = post_json(client, "/api/v1/reports", token, {"contact_phone": "2"}, **{"Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.get_json()["reason"] == "idempotency_key_reused"
    assert len(client.get("/api/v1/reports", headers=auth(token)).get_json()["items"]) == 1
    failures = [e for e in audit_events(app, "report.create") if e.outcome == "failure"]
    assert failures and failures[-1].reason == "idempotency_key_reused"


def _refusal(app, client, token, status, reason, url="/api/v1/reports"):
    before = len(audit_events(app, "report.create"))
    resp = post_json(client, url, token, {})
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json" and resp.get_json()["reason"] == reason
    denied = audit_events(app, "access.denied")
    assert denied and denied[-1].reason == reason
    assert len(audit_events(app, "report.create")) == before  # nothing changed
    return denied[-1]


def test_bad_tokens_are_refused_and_audited(app, client, filer, factory):
    from portal import db
    from portal.auth.tokens import ApiToken
    from portal.db import utcnow

    _refusal(app, client, "ttr_nonsense", 401, "token_unknown")
    resp = client.get("/api/v1/reports")
    assert resp.status_code == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
    tid, token = _token(app, filer, scopes=["reports:read"])
    event = _refusal(app, client, token, 403, "insufficient_scope")
    assert event.target_id == str(tid)
    tid, token = _token(app, filer, addresses="203.0.113.0/24")
    _refusal(app, client, token, 403, "token_address")
    tid, token = _token(app, filer)
    with app.app_context():
        db.session().get(ApiToken, tid).revoked_at = utcnow()
        db.session().commit()
    _refusal(app, client, token, 401, "token_revoked")
    tid, token = _token(app, filer)
    with app.app_context():
        db.session().get(ApiToken, tid).expires_at = utcnow()
        db.session().commit()
    _refusal(app, client, token, 401, "token_expired")


def test_a_token_of_another_organisation_sees_nothing(app, client, filer, factory):
    _id, token = _token(app, filer)
    rid = post_json(client, "/api/v1/reports", token, {}).get_json()["id"]
    org = factory.org(facility=True)
    other_admin = factory.user("org_admin", org=org)
    other = factory.user("filer", org=org)
    _oid, other_token = issue_token(app, other, admin=other_admin)
    assert client.get(f"/api/v1/reports/{rid}", headers=auth(other_token)).status_code == 404
    resp = patch_json(client, f"/api/v1/reports/{rid}", other_token, {"contact_phone": "1"}, **{"If-Match": "*"})
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    assert client.get("/api/v1/reports", headers=auth(other_token)).get_json()["items"] == []
    assert audit_events(app, "access.denied")[-1].reason == "other_organisation"


def test_the_session_cookie_is_never_read_on_the_api(app, client, filer, signed_in):
    user, _admin = filer
    c = signed_in(user)
    assert c.get("/reports").status_code == 200
    resp = c.get("/api/v1/reports")
    assert resp.status_code == 401  # a signed-in browser is nobody to the API


def test_rate_limit_answers_429_with_retry_after(app, client, filer):
    from portal.api.ratelimit import Limiter

    _id, token = _token(app, filer)
    saved = app.extensions["api_limiter"]
    app.extensions["api_limiter"] = Limiter(3)
    try:
        codes = [client.get("/api/v1/technologies", headers=auth(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        resp = client.get("/api/v1/technologies", headers=auth(token))
        assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
        assert resp.get_json()["reason"] == "rate_limited"
    finally:
        app.extensions["api_limiter"] = saved


def test_cursor_pagination_walks_every_report_once(app, client, filer):
    _id, token = _token(app, filer)
    ids = {post_json(client, "/api/v1/reports", token, {}).get_json()["id"] for _ in range(5)}
    seen, cursor = [], None
    while True:
        url = "/api/v1/reports?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=auth(token)).get_json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    bad = client.get("/api/v1/reports?cursor=garbage", headers=auth(token))
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "cursor"


def test_withdraw_and_messages(app, client, filer):
    _id, token = _token(app, filer)
    rid = post_json(client, "/api/v1/reports", token, complete_fields()).get_json()["id"]
    assert post_json(client, f"/api/v1/reports/{rid}/submit", token, {"attest": True}).status_code == 200
    msg = post_json(client, f"/api/v1/reports/{rid}/messages", token, {"body": "補足です", "classification": "restricted"})
    assert msg.status_code == 201, msg.get_json()
    thread = client.get(f"/api/v1/reports/{rid}/messages", headers=auth(token)).get_json()
    assert [m["body"] for m in thread["items"]] == ["補足です"]
    missing = post_json(client, f"/api/v1/reports/{rid}/withdraw", token, {"comment": ""})
    assert missing.status_code == 422
    done = post_json(client, f"/api/v1/reports/{rid}/withdraw", token, {"comment": "取引中止"})
    assert done.status_code == 200 and done.get_json()["status"] == "withdrawn"
    again = post_json(client, f"/api/v1/reports/{rid}/withdraw", token, {"comment": "取引中止"})
    assert again.status_code == 409 and again.get_json()["reason"] == "illegal_transition"


def test_openapi_document_is_served(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/reports/{report_id}/submit" in doc["paths"]
    assert doc["paths"]["/api/v1/reports"]["post"]["security"] == [{"bearer": ["reports:write"]}]


def test_org_admin_issues_lists_and_revokes_tokens_on_the_web(app, client, filer, signed_in):
    import re

    from tests.conftest import csrf_of

    user, admin = filer
    c = signed_in(admin)
    page = c.get("/organisation/api-tokens").get_data(as_text=True)
    bad = c.post("/organisation/api-tokens", data={
        "csrf_token": csrf_of(page), "name": "ERP", "user_id": str(user.id), "scopes": ["reports:read"], "days": "30",
        "source_addresses": "not-an-address"})
    assert bad.status_code == 400 and "not-an-address" in bad.get_data(as_text=True)
    resp = c.post("/organisation/api-tokens", data={
        "csrf_token": csrf_of(page), "name": "ERP", "user_id": str(user.id), "scopes": ["reports:read", "reports:write"],
        "days": "30", "source_addresses": "127.0.0.1 10.0.0.0/8"})
    assert resp.status_code == 200
    token = re.search(r'id="new-token">(ttr_[^<]+)<', resp.get_data(as_text=True)).group(1)
    assert token not in c.get("/organisation/api-tokens").get_data(as_text=True)  # shown once
    assert client.get("/api/v1/reports", headers=auth(token)).status_code == 200
    from portal import db
    from portal.auth.tokens import ApiToken, digest

    with app.app_context():
        row = db.session().execute(__import__("sqlalchemy").select(ApiToken)).scalar_one()
        assert row.token_hash == digest(token) and token not in (row.token_hash, row.hint + "x")
        tid = row.id
    listing = c.get("/organisation/api-tokens").get_data(as_text=True)
    revoke = c.post(f"/organisation/api-tokens/{tid}/revoke", data={"csrf_token": csrf_of(listing)})
    assert revoke.status_code == 302
    assert client.get("/api/v1/reports", headers=auth(token)).status_code == 401
    assert [e.target_id for e in audit_events(app, "api.token.revoke")] == [str(tid)]
    # A filer may not issue tokens (the same decision as inviting a member).
    from tests.conftest import sign_in

    f = app.test_client()
    sign_in(f, user)
    assert f.post("/organisation/api-tokens", data={"csrf_token": csrf_of(f.get("/account").get_data(as_text=True)),
                                                    "name": "x"}).status_code == 403
