"""Issue 15 item 1: every choice offered is one the person may make; what is out of reach says
why and who can change it; a refusal keeps what was typed (filing steps and message forms)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.conftest import audit_events, csrf_of, sign_in
from tests.reports_helpers import fill_all, good_values, new_report, post_step, report_row, submit, submitted_case


def _options(html: str, name: str) -> set[str]:
    m = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.DOTALL)
    assert m, f"no select {name}"
    return set(re.findall(r'<option[^>]*value="([^"]*)"', m.group(1))) - {""}


def _radios(html: str, name: str) -> set[str]:
    return set(re.findall(rf'<input[^>]*name="{name}"[^>]*type="radio"[^>]*value="([^"]*)"', html))


def _in_force(app) -> set[str]:
    from portal import db
    from portal.core.timeutil import today_jst
    from portal.reports import services

    with app.app_context():
        return {t.code for t in services.technologies_in_force(db.session(), today_jst())}


# ---------------------------------------------------------------- the technology step

@pytest.fixture
def t01_filer(app, factory, client):
    org = factory.org(facility=True)
    user = factory.user("filer", org=org, compartments=("T01", "T08"))
    sign_in(client, user)
    return client


def test_only_technologies_the_clearance_covers_are_offered(app, t01_filer):
    rid = new_report(t01_filer)
    html = t01_filer.get(f"/reports/{rid}/edit/technology").get_data(as_text=True)
    assert _options(html, "technology") == {"T01", "T08"}
    hidden = len(_in_force(app)) - 2
    assert hidden > 0
    assert 'data-test="technologies-withheld"' in html
    assert f"({hidden} " in html or f"{hidden}件" in html  # the sentence says how many are not listed


def test_a_posted_technology_outside_the_clearance_is_refused_beside_the_field(app, t01_filer):
    rid = new_report(t01_filer)
    post_step(t01_filer, rid, "contact", good_values("contact"))
    values = {**good_values("technology"), "technology": "T06", "description": "手で作った送信：焼成条件"}
    resp = post_step(t01_filer, rid, "technology", values)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="technology-error"' in html and 'aria-invalid="true"' in html
    assert "手で作った送信：焼成条件" in html  # what was typed is still in the form
    assert 'class="error-summary"' in html
    r = report_row(app, rid)
    assert r.technology_id is None and "T06" not in r.draft
    # The draft stays the author's: in the list and open.
    assert f"/reports/{rid}" in t01_filer.get("/reports").get_data(as_text=True)
    assert t01_filer.get(f"/reports/{rid}/edit/technology").status_code == 200
    assert t01_filer.get(f"/reports/{rid}").status_code == 200
    assert audit_events(app, "access.denied") == []


def test_a_returned_report_offers_only_technologies_that_keep_it_readable(app, factory, client):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org, compartments=("T01", "T08"))
    reviewer = factory.user("reviewer", compartments=("T01",))
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    submit(client, rid)
    rc = app.test_client()
    sign_in(rc, reviewer)
    page = rc.get(f"/reports/{rid}").get_data(as_text=True)
    rc.post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)})
    page = rc.get(f"/reports/{rid}").get_data(as_text=True)
    assert rc.post(f"/review/cases/{rid}/return", data={"comment": "技術を確認", "csrf_token": csrf_of(page)}).status_code == 302
    assert report_row(app, rid).status == "returned"
    html = client.get(f"/reports/{rid}/edit/technology").get_data(as_text=True)
    assert _options(html, "technology") == {"T01", "T08"}
    resp = post_step(client, rid, "technology", {**good_values("technology"), "technology": "T06"})
    assert resp.status_code == 400 and 'id="technology-error"' in resp.get_data(as_text=True)
    assert client.get(f"/reports/{rid}").status_code == 200


# ---------------------------------------------------------------- classification

def test_no_facility_clearance_no_confidential_on_offer(app, factory, client):
    org = factory.org(facility=False)
    filer = factory.user("filer", org=org, level="confidential", compartments=("T01",))
    sign_in(client, filer)
    rid = new_report(client)
    html = client.get(f"/reports/{rid}/edit/technology").get_data(as_text=True)
    assert _radios(html, "classification") == {"public", "restricted"}
    assert 'data-test="classification-withheld-confidential"' in html
    resp = post_step(client, rid, "technology", {**good_values("technology"), "classification": "confidential",
                                                  "description": "秘にしたい説明文"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="classification-error"' in html and "秘にしたい説明文" in html
    assert report_row(app, rid).classification == "restricted"
    assert f"/reports/{rid}" in client.get("/reports").get_data(as_text=True)


def test_clearance_below_a_level_is_explained(app, factory, client):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org, level="restricted", compartments=("T01",))
    sign_in(client, filer)
    rid = new_report(client)
    html = client.get(f"/reports/{rid}/edit/technology").get_data(as_text=True)
    assert _radios(html, "classification") == {"public", "restricted"}
    assert 'data-test="classification-withheld-confidential"' in html
    resp = post_step(client, rid, "technology", {**good_values("technology"), "classification": "confidential"})
    assert resp.status_code == 400 and 'id="classification-error"' in resp.get_data(as_text=True)


def test_a_draft_never_starts_above_its_authors_clearance(app, factory, client):
    """A person cleared for public only: the new draft is theirs to open and fill in."""
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org, level="public", compartments=("T01",))
    sign_in(client, filer)
    rid = new_report(client)
    assert report_row(app, rid).classification == "public"
    html = client.get(f"/reports/{rid}/edit/technology")
    assert html.status_code == 200
    assert _radios(html.get_data(as_text=True), "classification") == {"public"}
    assert f"/reports/{rid}" in client.get("/reports").get_data(as_text=True)
    assert post_step(client, rid, "technology", {**good_values("technology"), "classification": "public"}).status_code == 302


# ---------------------------------------------------------------- message forms

def _case(app, factory, *, facility=True, filer_level="confidential", reviewer_level="csi"):
    """A submitted T01 report taken by a reviewer; both signed in."""
    c = submitted_case(app, factory, facility=facility, filer_level=filer_level, reviewer_level=reviewer_level,
                       take=True)
    return c["rid"], c["fc"], c["rc"]


def _send(client, rid, channel, data):
    page = client.get(f"/reports/{rid}").get_data(as_text=True)
    return client.post(f"/reports/{rid}/messages/{channel}", data={"csrf_token": csrf_of(page), **data},
                       content_type="multipart/form-data")


def _messages(app, rid) -> int:
    from portal import db
    from portal.dialogue.models import Message

    with app.app_context():
        return db.session().execute(sa.select(sa.func.count()).select_from(Message)
                                    .where(Message.report_id == rid)).scalar_one()


def test_the_external_form_offers_no_level_the_company_may_not_read(app, factory):
    rid, fc, rc = _case(app, factory)
    html = rc.get(f"/reports/{rid}").get_data(as_text=True)
    assert _options(html.split('id="channel-internal"')[0], "classification") == {"public", "restricted", "confidential"}
    assert 'data-test="level-withheld-external-csi"' in html
    # The internal note takes every level the reviewer holds.
    assert _options(html.split('id="channel-internal"')[1], "classification") == {"public", "restricted", "confidential", "csi"}


def test_no_confidential_to_a_company_without_facility_clearance(app, factory):
    rid, fc, rc = _case(app, factory, facility=False, filer_level="restricted")
    html = rc.get(f"/reports/{rid}").get_data(as_text=True)
    external = html.split('id="channel-internal"')[0]
    assert _options(external, "classification") == {"public", "restricted"}
    assert 'data-test="level-withheld-external-confidential"' in html


def test_a_filer_is_offered_only_levels_within_their_clearance(app, factory):
    rid, fc, rc = _case(app, factory, filer_level="restricted")
    html = fc.get(f"/reports/{rid}").get_data(as_text=True)
    assert _options(html, "classification") == {"public", "restricted"}
    assert 'data-test="level-withheld-external-confidential"' in html
    assert 'name="request"' not in html and 'name="due_date"' not in html


@pytest.mark.parametrize("who, level, reason", [("rc", "csi", "write_down"), ("fc", "confidential", "clearance_level")])
def test_a_refused_send_keeps_the_text_beside_the_field(app, factory, who, level, reason):
    rid, fc, rc = _case(app, factory, filer_level="restricted")
    client = {"rc": rc, "fc": fc}[who]
    body = "長い本文：出資比率の根拠と契約書案の第12条について確認させてください。"
    resp = _send(client, rid, "external", {"body": body, "classification": level})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400  # not a bare 403
    assert body in html  # the typed text is back in the form
    assert 'id="classification-external-error"' in html and 'class="error-summary"' in html
    assert 'href="#classification-external"' in html
    assert re.search(r"<title>[^<]*(Error|エラー)", html)
    assert _messages(app, rid) == 0
    ev = audit_events(app, "message.post")[-1]
    assert ev.outcome == "failure" and ev.reason == reason
    assert audit_events(app, "access.denied") == []
    # Sent again at a level on offer, it goes through.
    assert _send(client, rid, "external", {"body": body, "classification": "restricted"}).status_code == 302
    assert _messages(app, rid) == 1


def test_a_refused_file_keeps_the_message_and_says_so_beside_the_file(app, factory):
    import io

    rid, fc, rc = _case(app, factory)
    body = "添付のとおり回答します。"
    resp = _send(fc, rid, "external", {"body": body, "classification": "restricted",
                                       "file": (io.BytesIO(b""), "empty.pdf")})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and body in html and 'id="file-external-error"' in html
    assert _messages(app, rid) == 0
    assert audit_events(app, "message.post")[-1].reason == "empty_file"
