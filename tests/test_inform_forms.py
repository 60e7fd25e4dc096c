"""The inform and assignment forms on the case page, refused for what they hold: the case page
again (400) with the typed text kept and the error beside its field, nothing changed, the
failure recorded; the rationale offers only the classifications its writer may write at."""
from __future__ import annotations

import re

import pytest

from tests.conftest import audit_events, csrf_of, ja
from tests.test_display_words import switch
from tests.inform_helpers import make_case
from tests.test_informs import DRAFT, _inform, draft_and_send, post


@pytest.fixture
def case(app, factory, tmp_path):
    return make_case(app, factory, tmp_path)


def _options(html: str, select_id: str) -> list[str]:
    m = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', html, re.DOTALL)
    assert m, select_id
    return re.findall(r'<option[^>]*value="([^"]*)"', m.group(1))


def _error_beside(html: str, field_id: str) -> str:
    m = re.search(rf'<p class="form-error" id="{field_id}-error">(.*?)</p>', html, re.DOTALL)
    assert m, f"no error beside {field_id}"
    return m.group(1)


def test_rationale_offers_only_the_levels_its_writer_may_write(app, case):
    rid = case["rid"]
    page = case["reviewer"].get(f"/reports/{rid}").get_data(as_text=True)
    # The reviewer holds 秘 (confidential), not 重要経済安保情報: the list stops at 秘, and it
    # starts on the case's own level, never 公開.
    assert _options(page, "new-inform-rationale_classification") == ["public", "restricted", "confidential"]
    m = re.search(r'<option selected value="([^"]+)"|<option value="([^"]+)" selected', page)
    assert m and (m.group(1) or m.group(2)) != "public"


def test_a_level_not_offered_is_refused_beside_its_field_and_the_text_kept(app, case):
    rid = case["rid"]
    resp = post(case["reviewer"], rid, f"/reports/{rid}/informs", {**DRAFT, "rationale_classification": "csi"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ja("Your clearance does not allow you to write the rationale at this classification. Choose one from the list.") \
        in _error_beside(html, "new-inform-rationale_classification")
    assert DRAFT["reasons"] in html and DRAFT["internal_rationale"] in html  # nothing typed is lost
    assert re.search(r'<details class="details" open><summary data-test="draft-inform">', html)
    assert _inform(app, rid) is None
    assert [e.outcome for e in audit_events(app, "inform.draft")] == ["failure"]


def test_an_incomplete_draft_shows_each_missing_field(app, case):
    rid = case["rid"]
    resp = post(case["reviewer"], rid, f"/reports/{rid}/informs",
                {**DRAFT, "reasons": "", "internal_rationale": "  "})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ja("Enter the reasons the company will read.") in _error_beside(html, "new-inform-reasons")
    assert ja("Enter the internal rationale.") in _error_beside(html, "new-inform-internal_rationale")
    assert 'href="#new-inform-reasons"' in html  # the error summary links to the field
    assert DRAFT["legal_basis"] in html
    assert _inform(app, rid) is None


def test_editing_a_draft_keeps_the_text_on_a_refusal(app, case):
    rid = case["rid"]
    assert post(case["reviewer"], rid, f"/reports/{rid}/informs", DRAFT).status_code == 302
    i = _inform(app, rid)
    resp = post(case["reviewer"], rid, f"/informs/{i.id}/edit",
                {**DRAFT, "reasons": "書き直した理由", "legal_basis": ""})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ja("Enter the legal basis.") in _error_beside(html, f"inform-{i.id}-edit-legal_basis")
    assert "書き直した理由" in html
    assert _inform(app, rid).reasons == DRAFT["reasons"]  # unchanged


def test_company_forms_show_their_errors_beside_the_field(app, case):
    rid = case["rid"]
    i = draft_and_send(case)
    assert post(case["approver"], rid, f"/informs/{i.id}/approve", {"comment": "承認"}).status_code == 302
    resp = post(case["filer"], rid, f"/informs/{i.id}/acknowledge", {})
    assert resp.status_code == 400
    assert ja("Confirm that you have received the notice.") in _error_beside(resp.get_data(as_text=True), "ack-confirm")
    assert _inform(app, rid).acknowledged_at is None
    assert post(case["filer"], rid, f"/informs/{i.id}/acknowledge", {"confirm": "y"}).status_code == 302
    resp = post(case["filer"], rid, f"/informs/{i.id}/licence", {"licence_application_ref": "x" * 101})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "x" * 101 in html
    _error_beside(html, "licence-licence_application_ref")
    assert _inform(app, rid).licence_application_ref is None


def test_revocation_without_a_reason_opens_its_form_with_the_error(app, case):
    rid = case["rid"]
    i = draft_and_send(case)
    post(case["approver"], rid, f"/informs/{i.id}/approve", {"comment": "承認"})
    resp = post(case["approver"], rid, f"/informs/{i.id}/revoke", {"reason": " "})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ja("Enter the reason for the revocation.") in _error_beside(html, "revoke-reason")
    assert re.search(r'<details class="details" open><summary>' + re.escape(ja("Revoke this inform")), html)
    assert _inform(app, rid).status == "issued"


def test_assigning_to_someone_not_offered_is_refused_beside_the_list(app, case):
    rid = case["rid"]
    c = case["approver"]  # approvers assign cases
    page = c.get(f"/reports/{rid}").get_data(as_text=True)
    resp = c.post(f"/review/cases/{rid}/assign", data={"assignee": str(case["u_filer"].id), "csrf_token": csrf_of(page)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ja("Choose a reviewer who may see this case.") in _error_beside(html, "assign-assignee")
    assert 'href="#assign-assignee"' in html


def test_english_errors_are_marked_in_english(app, case):
    rid = case["rid"]
    c = case["reviewer"]
    switch(c, "en")
    resp = post(c, rid, f"/reports/{rid}/informs", {**DRAFT, "reasons": ""})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    err = _error_beside(html, "new-inform-reasons")
    assert "＊" not in err and '<span class="visually-hidden">Error: </span>Enter the reasons the company will read.' in err
