"""The filing as a filer walks it (issue 15): the files are a step of the filing and appear on
the check page; the upload form has a progress bar from a script file under the strict CSP;
sizes are readable; a closed upload says why; 「入力を続ける」 reopens where work remains."""
from __future__ import annotations

import io
import re

import pytest

from tests.conftest import csrf_of, sign_in
from tests.reports_helpers import fill_all, good_values, new_report, post_step, submit

PDF = b"%PDF-1.7\n" + b"x" * (340 * 1024) + b"\n%%EOF\n"


@pytest.fixture
def filer(factory):
    org = factory.org("株式会社ステップ", facility=True)
    return factory.user("filer", org=org, compartments=("T01",))


def _upload(client, rid, data=PDF, name="契約書.pdf"):
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    return client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                       data={"csrf_token": csrf_of(page), "classification": "restricted",
                             "file": (io.BytesIO(data), name)})


def test_measures_continue_to_the_attachments_step_then_the_check_page(client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    for step in ("contact", "technology", "counterparty", "transfer"):
        assert post_step(client, rid, step, good_values(step)).status_code == 302
    resp = post_step(client, rid, "measures", good_values("measures"))
    assert resp.status_code == 302 and resp.location.endswith(f"/reports/{rid}/attachments")
    page = client.get(resp.location)
    html = page.get_data(as_text=True)
    # A step of the filing: the step indicator marks it, and it continues to the check page.
    assert f'<li aria-current="step"><a href="/reports/{rid}/attachments">' in html
    assert f'href="/reports/{rid}/check" data-test="continue"' in html
    # Every content step's indicator lists the files too.
    step_html = client.get(f"/reports/{rid}/edit/contact").get_data(as_text=True)
    assert f'href="/reports/{rid}/attachments"' in step_html and "6" in step_html
    # The progress bar: a script file, no inline script, the CSP unchanged.
    assert 'src="/static/upload.js"' in html and "data-upload " in html and "<progress" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert client.get("/static/upload.js").status_code == 200


def test_check_page_lists_files_with_readable_size_and_change_link(client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    empty = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    block = empty.split('data-test="check-attachments"')[1].split("</dl>")[0]
    assert f'href="/reports/{rid}/attachments"' in block
    assert _upload(client, rid).status_code == 302
    check = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    block = check.split('data-test="check-attachments"')[1].split("</dl>")[0]
    assert "契約書.pdf" in block and "340 KB" in block and f'href="/reports/{rid}/attachments"' in block
    files = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert '<td data-label="' in files and ">340 KB<" in files and " B</td>" not in files


@pytest.mark.parametrize("size, text", [(0, "0 B"), (900, "900 B"), (1024, "1 KB"), (340 * 1024 + 5, "340 KB"),
                                        (int(1.2 * 1024 * 1024), "1.2 MB"), (60 * 1024 * 1024, "60 MB"),
                                        (3 * 1024 ** 3, "3 GB")])
def test_filesize_filter(app, size, text):
    with app.test_request_context():
        assert app.jinja_env.filters["filesize"](size) == text


def test_submitted_report_says_why_files_cannot_be_added(app, client, filer, factory):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    assert _upload(client, rid).status_code == 302
    assert submit(client, rid).status_code == 302
    html = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert 'data-test="upload-closed"' in html and 'type="file"' not in html
    assert "upload.js" not in html and 'aria-current="step"' not in html
    assert "契約書.pdf" in html
    # A reviewer reads a different reason: the report's files are the company's.
    reviewer = factory.user("reviewer", compartments=("T01",))
    other = app.test_client()
    sign_in(other, reviewer)
    rhtml = other.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    closed = rhtml.split('data-test="upload-closed"')[1].split("</div>")[0]
    assert closed != html.split('data-test="upload-closed"')[1].split("</div>")[0]
    assert 'type="file"' not in rhtml


def test_upload_closed_reason_words_each_refusal(app):
    from portal.access.policy import ALLOW, Decision
    from portal.attachments.closed import upload_closed_reason

    with app.test_request_context():
        assert upload_closed_reason("draft", ALLOW) is None
        assert upload_closed_reason("returned", ALLOW) is None
        reasons = {upload_closed_reason("submitted", ALLOW), upload_closed_reason("draft", Decision(False, "role")),
                   upload_closed_reason("draft", Decision(False, "facility_clearance")),
                   upload_closed_reason("draft", Decision(False, "clearance_expired")),
                   upload_closed_reason("draft", Decision(False, "anything_else"))}
        assert None not in reasons and len(reasons) == 5


def test_continue_editing_reopens_the_first_incomplete_step(client, filer):
    sign_in(client, filer)
    rid = new_report(client)

    def resume():
        html = client.get(f"/reports/{rid}").get_data(as_text=True)
        return re.search(r'href="([^"]+)" data-test="continue-editing"', html).group(1)

    # The contact step comes prefilled from the filer's account: the technology is the first gap.
    assert resume() == f"/reports/{rid}/edit/technology"
    for step in ("contact", "technology"):
        post_step(client, rid, step, good_values(step))
    assert resume() == f"/reports/{rid}/edit/counterparty"
    post_step(client, rid, "transfer", good_values("transfer"))
    assert resume() == f"/reports/{rid}/edit/counterparty"  # still the first gap, not the last saved
    fill_all(client, rid)
    assert resume() == f"/reports/{rid}/check"


# ------------------------------------------------------------------ countries and Group A

def test_country_lists_run_in_reading_order_and_japan_is_no_destination():
    from portal.reports.reference_data import JA_READINGS, countries, destination_countries

    ja = [n for _, n in countries("ja")]
    # 韓国 under か, 中国 and 台湾 under た/ち, 日本 under に: all before ロシア, no longer after it.
    assert ja.index("韓国") < ja.index("タイ") < ja.index("台湾") < ja.index("中国") < ja.index("日本") < ja.index("ロシア")
    assert ja.index("カナダ") < ja.index("韓国") < ja.index("カンボジア")
    # Every name CLDR writes with a kanji first has its reading.
    kanji_first = [c for c, n in countries("ja") if "\u4e00" <= n[0] <= "\u9fff"]
    assert kanji_first and set(kanji_first) <= set(JA_READINGS)
    for loc in ("ja", "en"):
        dest = dict(destination_countries(loc))
        assert "JP" not in dest and "CN" in dest and len(dest) == len(countries(loc)) - 1
    en = [n for _, n in countries("en")]
    assert en.index("Åland Islands") < en.index("Albania") < en.index("Zimbabwe") == len(en) - 1


def test_japan_is_not_offered_and_is_refused_beside_the_field(client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    page = client.get(f"/reports/{rid}/edit/transfer").get_data(as_text=True)
    select = page.split('id="destination_country"', 1)[1].split("</select>", 1)[0]
    assert 'value="JP"' not in select and 'value="CN"' in select
    # Counterparties may be in Japan (a foreign company's Japanese subsidiary).
    cp = client.get(f"/reports/{rid}/edit/counterparty").get_data(as_text=True)
    assert 'value="JP"' in cp.split('id="counterparty_country"', 1)[1].split("</select>", 1)[0]
    resp = post_step(client, rid, "transfer", {**good_values("transfer"), "destination_country": "JP"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    beside = html.split('id="destination_country-error"', 1)[1].split("</p>", 1)[0]
    assert len(beside) > 10 and 'aria-invalid="true"' in html.split('id="destination_country"', 1)[0][-400:] + \
        html.split('id="destination_country"', 1)[1][:400]
    assert 'href="#destination_country"' in html  # and in the error summary


def test_group_a_confirmation_is_marked_required_when_it_is(client, filer):
    from tests.conftest import ja

    sign_in(client, filer)
    rid = new_report(client)
    resp = post_step(client, rid, "transfer", {**good_values("transfer"), "destination_country": "US"})
    assert resp.status_code == 400  # the service requires the confirmation for a Group A country
    html = resp.get_data(as_text=True)
    group = html.split('id="group_a_confirmed-error"', 1)[1].split("</div>", 1)[0]
    assert ja("Required") in group and ja("Optional") not in group
    ok = post_step(client, rid, "transfer", {**good_values("transfer"), "destination_country": "US",
                                             "group_a_confirmed": "y"})
    assert ok.status_code == 302
    # Not a Group A destination: the box is not shown at all.
    page = client.get(f"/reports/{rid}/edit/transfer").get_data(as_text=True)
    assert 'id="group_a_confirmed"' in page  # still US
    post_step(client, rid, "transfer", good_values("transfer"))
    assert 'id="group_a_confirmed"' not in client.get(f"/reports/{rid}/edit/transfer").get_data(as_text=True)


# ------------------------------------------------------------------ deleting a draft

def _reports(app):
    import sqlalchemy as sa

    from portal import db
    from portal.attachments.models import Attachment
    from portal.reports.models import Report, ReportEvent

    with app.app_context():
        s = db.session()
        out = tuple(s.execute(sa.select(sa.func.count()).select_from(m)).scalar_one()
                    for m in (Report, Attachment, ReportEvent))
        s.rollback()
        return out


@pytest.fixture(params=["directory", "database"])
def blobs(request, app, tmp_path):
    s = app.config["SETTINGS"]
    old = (s.blob_store, s.blob_dir)
    s.blob_store, s.blob_dir = request.param, tmp_path / "blobs"
    yield tmp_path / "blobs"
    s.blob_store, s.blob_dir = old


def test_delete_a_draft_after_a_confirmation_page(app, client, filer, blobs):
    from tests.conftest import audit_events

    sign_in(client, filer)
    rid = new_report(client)
    post_step(client, rid, "technology", good_values("technology"))
    assert _upload(client, rid).status_code == 302
    before = _reports(app)
    assert before[:2] == (1, 1)
    show = client.get(f"/reports/{rid}").get_data(as_text=True)
    assert f'href="/reports/{rid}/delete" data-test="delete-draft"' in show
    page = client.get(f"/reports/{rid}/delete")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-test="confirm-delete"' in html and "契約書.pdf" in html
    # A POST without the confirmation page's field deletes nothing.
    bare = client.post(f"/reports/{rid}/delete", data={"csrf_token": csrf_of(html)})
    assert bare.status_code == 400 and _reports(app) == before
    resp = client.post(f"/reports/{rid}/delete", data={"csrf_token": csrf_of(html), "confirm": "delete"})
    assert resp.status_code == 302 and resp.location.endswith("/reports")
    assert _reports(app) == (0, 0, 0)
    assert client.get(f"/reports/{rid}").status_code == 404
    if blobs.exists():
        assert [p for p in blobs.rglob("*") if p.is_file()] == []
    [ev] = audit_events(app, "report.delete")
    assert (ev.outcome, ev.target_id, ev.actor_id) == ("success", str(rid), filer.id)
    assert len(audit_events(app, "attachment.delete")) == 1


def test_a_submitted_report_cannot_be_deleted(app, client, filer):
    from tests.conftest import audit_events

    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    assert submit(client, rid).status_code == 302
    show = client.get(f"/reports/{rid}").get_data(as_text=True)
    assert "data-test=\"delete-draft\"" not in show
    page = client.get(f"/reports/{rid}/delete").get_data(as_text=True)
    assert 'data-test="not-deletable"' in page and "confirm-delete" not in page
    before = _reports(app)
    resp = client.post(f"/reports/{rid}/delete", data={"csrf_token": csrf_of(show), "confirm": "delete"})
    assert resp.status_code in (302, 400) and _reports(app) == before
    assert [e.outcome for e in audit_events(app, "report.delete")] == ["failure"]


def test_another_organisation_cannot_delete_a_draft(app, client, filer, factory):
    sign_in(client, filer)
    rid = new_report(client)
    other = app.test_client()
    sign_in(other, factory.user("filer", org=factory.org(facility=True)))
    token = csrf_of(other.get("/reports").get_data(as_text=True))
    assert other.get(f"/reports/{rid}/delete").status_code == 404
    assert other.post(f"/reports/{rid}/delete", data={"csrf_token": token, "confirm": "delete"}).status_code == 404
    assert _reports(app)[0] == 1


def _offered_levels(html: str) -> set[str]:
    select = re.search(r'<select[^>]*name="classification".*?</select>', html, re.DOTALL)
    assert select is not None, "the upload form offers no classification"
    return set(re.findall(r'<option value="([a-z]+)"', select.group(0)))


@pytest.mark.parametrize("facility, cleared, offered", [
    (True, "confidential", {"public", "restricted", "confidential"}),
    (False, "confidential", {"public", "restricted"}),   # no facility clearance: no 秘 file
    (True, "restricted", {"public", "restricted"}),      # above the person's clearance
])
def test_the_upload_form_offers_only_classifications_the_filer_may_give(app, factory, facility, cleared, offered):
    """Issue 15 point 1: a choice offered is one the user may make; the refused one was a 403."""
    org = factory.org(facility=facility)
    person = factory.user("filer", org=org, level=cleared, compartments=("T01",))
    c = app.test_client()
    sign_in(c, person)
    rid = new_report(c)
    assert _offered_levels(c.get(f"/reports/{rid}/attachments").get_data(as_text=True)) == offered
