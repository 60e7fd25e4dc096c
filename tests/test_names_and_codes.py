"""Names, codes and file names (issue 13, item 7): control and text-direction characters are
removed from file names and refused, with a message beside the field, in codes and names;
technology codes follow their documented pattern; the 法人番号 messages say what is wrong;
downloads keep their sandbox CSP."""
from __future__ import annotations

import html
import io
import re

import pytest
import sqlalchemy as sa

from tests.conftest import audit_events, csrf_of, post_form, sign_in
from tests.reports_helpers import fill_all, new_report, submit

BIDI = ["\u202e", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"]
CONTROLS = ["\x01", "\x1b", "\x7f", "\x85", "\x9b"]


def english(client) -> None:
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_of(page)}).status_code == 302


def error_beside(page: str, field: str) -> str:
    """The text of the error message shown beside ``field`` ('' when there is none)."""
    m = re.search(rf'<p class="form-error" id="{field}-error">(.*?)</p>', page, re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", m.group(1))) if m else ""


def q(app, sql: str, **params):
    with app.app_context():
        from portal import db

        return db.session().execute(sa.text(sql), params).all()


# ---------------------------------------------------------------- the rule itself

@pytest.mark.parametrize("ch", BIDI + CONTROLS + ["\x00", "\u061c", "\u2028", "\ufeff"])
def test_every_control_and_direction_character_is_found(ch):
    from portal.core.text import first_control, strip_controls

    assert first_control(f"T{ch}20") == ch
    assert strip_controls(f"photo{ch}gnp.txt") == "photognp.txt"


def test_ordinary_names_pass():
    from portal.core.text import control_problem

    for text in ("株式会社サンプル電子", "ｻﾝﾌﾟﾙ商事", "O'Brien & Co., Ltd.", "Zoë Müller", "مرحبا", "山田\u3000太郎", "👩‍🔬 Lab"):
        assert control_problem(text) is None, text
    assert control_problem("東京都千代田区\r\n霞が関1-3-1\t本館", multiline=True) is None
    assert control_problem("東京都\u202e区", multiline=True)
    assert control_problem("line one\nline two")  # one line only where one line is asked


def test_file_names_lose_control_and_direction_characters():
    from portal.attachments.services import clean_filename

    assert clean_filename("photo\u202egnp.txt") == "photognp.txt"
    assert clean_filename("report\u2067fdp.exe\u2069.pdf") == "reportfdp.exe.pdf"
    assert clean_filename("a\x00b\x1bc\x85d\u200f.pdf") == "abcd.pdf"
    assert clean_filename("\u202e\u202e") == "attachment"


@pytest.fixture
def filer(app, factory, tmp_path):
    s = app.config["SETTINGS"]
    saved = (s.blob_store, s.blob_dir)
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    client = app.test_client()
    sign_in(client, factory.user("filer", org=factory.org(facility=True)))
    yield client
    s.blob_store, s.blob_dir = saved


def test_an_uploaded_file_keeps_no_direction_override(app, filer):
    rid = new_report(filer)
    page = filer.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    resp = filer.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                      data={"csrf_token": csrf_of(page), "classification": "restricted",
                            "file": (io.BytesIO(b"just text\n"), "photo\u202egnp.txt")})
    assert resp.status_code == 302, resp.get_data(as_text=True)[-1500:]
    [(att_id, name)] = q(app, "SELECT id, filename FROM attachments")
    assert name == "photognp.txt"
    listing = filer.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert "photognp.txt" in listing and "\u202e" not in listing
    got = filer.get(f"/attachments/{att_id}")
    assert "\u202e" not in got.headers["Content-Disposition"] and "%E2%80%AE" not in got.headers["Content-Disposition"]
    got.close()


# ---------------------------------------------------------------- technology codes

@pytest.fixture
def admin(app, factory):
    client = app.test_client()
    sign_in(client, factory.user("admin", level="restricted", compartments=()))
    english(client)
    yield client
    # The catalogue is kept between tests (conftest.KEEP): take out what a test added.
    from portal.catalogue.seed import TECHNOLOGIES

    with app.extensions["db_engine"].begin() as c:
        c.execute(sa.text("DELETE FROM technologies WHERE code NOT IN :codes").bindparams(
            sa.bindparam("codes", expanding=True)), {"codes": [t[0] for t in TECHNOLOGIES]})


def _add(admin, **values):
    data = {"code": "T20", "name_ja": "新技術", "name_en": "New technology", "effective_from": "2027-04-01", **values}
    return post_form(admin, "/admin/technologies/", data)


def _codes(app) -> set[str]:
    return {r[0] for r in q(app, "SELECT code FROM technologies")}


@pytest.mark.parametrize("code", ['=HYPERLINK("http://e.x")', "=1+2", "@SUM(A1)", "0000-00-00", "🧪", "T", "T1", "T1234",
                                  "X20", "T2O", "T-20", "T٢٠", "20", "T 20 A"])
def test_a_technology_code_must_match_the_pattern(app, admin, code):
    before = _codes(app)
    resp = _add(admin, code=code)
    assert resp.status_code == 400
    msg = error_beside(resp.get_data(as_text=True), "code")
    assert "the letter T and two or three digits, for example T20" in msg, msg
    assert _codes(app) == before
    assert [(e.outcome, e.reason) for e in audit_events(app, "catalogue.add")] == [("failure", "bad_code")]


@pytest.mark.parametrize("code", ["T\u202e20", "\u2066T20\u2069", "T2\u200f0", "T\x1b20", "T2\x850"])
def test_a_technology_code_with_a_hidden_character_is_refused_and_the_character_named(app, admin, code):
    before = _codes(app)
    resp = _add(admin, code=code)
    assert resp.status_code == 400
    msg = error_beside(resp.get_data(as_text=True), "code")
    ch = next(c for c in code if c not in "T20")
    assert f"U+{ord(ch):04X}" in msg and "control or text-direction character" in msg, msg
    assert _codes(app) == before


@pytest.mark.parametrize("typed, stored", [("t20", "T20"), ("Ｔ２１", "T21"), (" T120 ", "T120")])
def test_the_same_code_typed_another_way_is_accepted(app, admin, typed, stored):
    assert _add(admin, code=typed).status_code == 302
    assert stored in _codes(app)


@pytest.mark.parametrize("field", ["name_ja", "name_en"])
def test_technology_names_with_direction_characters_are_refused(app, admin, field):
    resp = _add(admin, **{field: "Solid \u202eetylortcele"})
    assert resp.status_code == 400
    assert "U+202E" in error_beside(resp.get_data(as_text=True), field)
    assert "T20" not in _codes(app)
    # Any entry of the catalogue (another test may have deleted or renamed a seeded one).
    [(tid, name_ja, name_en)] = q(app, "SELECT id, name_ja, name_en FROM technologies ORDER BY id LIMIT 1")
    resp = post_form(admin, f"/admin/technologies/{tid}", {"name_ja": name_ja, "name_en": name_en,
                                                          field: "x\u2067y", "effective_until": ""})
    assert resp.status_code == 400
    assert "U+2067" in error_beside(resp.get_data(as_text=True), field)
    assert q(app, "SELECT name_ja, name_en FROM technologies WHERE id = :i", i=tid) == [(name_ja, name_en)]


def test_the_code_pattern_is_said_beside_the_field(admin):
    page = admin.get("/admin/technologies/").get_data(as_text=True)
    assert "The letter T and two or three digits, for example T20." in page


# ---------------------------------------------------------------- 法人番号 and organisation names

def _orgs(app) -> set[str]:
    return {r[0] for r in q(app, "SELECT corporate_number FROM organisations")}


@pytest.mark.parametrize("number, says, reason", [
    ("118030101877", "has 13 digits; this one has 12", "corporate_number_length"),
    ("11803010187711", "has 13 digits; this one has 14", "corporate_number_length"),
    ("１１８０３０１０１８７７", "has 13 digits; this one has 12", "corporate_number_length"),
    ("abcdefghijklm", "Enter digits only", "corporate_number_not_digits"),
    ("1180301O18771", "Enter digits only", "corporate_number_not_digits"),
    ("118030101877x", "Enter digits only", "corporate_number_not_digits"),
    ("١١٨٠٣٠١٠١٨٧٧١", "Enter digits only", "corporate_number_not_digits"),
    ("2180301018771", "the check digit, does not match", "bad_corporate_number"),
    ("1180301018772", "the check digit, does not match", "bad_corporate_number"),
])
def test_each_wrong_corporate_number_gets_its_own_message(app, admin, number, says, reason):
    before = _orgs(app)
    resp = post_form(admin, "/admin/organisations", {"name": "株式会社テスト", "corporate_number": number,
                                                     "address": "東京都千代田区"})
    assert resp.status_code == 400
    msg = error_beside(resp.get_data(as_text=True), "corporate_number")
    assert says in msg, msg
    for other in {"has 13 digits", "Enter digits only", "the check digit"} - {says.split(";")[0]}:
        if other not in says:
            assert other not in msg, msg
    assert _orgs(app) == before
    assert [(e.outcome, e.reason) for e in audit_events(app, "org.create")] == [("failure", reason)]


@pytest.mark.parametrize("field, value", [("name", "株式会社\u202eルプンサ"), ("name", "Evil\x1bCorp"),
                                          ("address", "東京都\u2066千代田区")])
def test_organisation_name_and_address_refuse_hidden_characters(app, admin, field, value):
    before = _orgs(app)
    data = {"name": "株式会社テスト", "corporate_number": "1180301018771", "address": "東京都千代田区\r\n霞が関", field: value}
    resp = post_form(admin, "/admin/organisations", data)
    assert resp.status_code == 400
    assert "control or text-direction character" in error_beside(resp.get_data(as_text=True), field)
    assert _orgs(app) == before
    # The same with ordinary text is accepted (a multi-line address included).
    ordinary = "株式会社テスト" if field == "name" else "東京都千代田区\r\n霞が関"
    ok = post_form(admin, "/admin/organisations", {**data, field: ordinary})
    assert ok.status_code == 302


@pytest.mark.parametrize("url, page, extra", [
    ("/organisation/members/invite", "/organisation/members", {"role": "filer"}),
    ("/admin/users/invite", "/admin/users", {"role": "filer"}),
])
def test_invited_names_refuse_hidden_characters(app, factory, url, page, extra):
    org = factory.org("株式会社サンプル電子", facility=True)
    who = factory.user("org_admin", org=org) if url.startswith("/organisation") else \
        factory.user("admin", level="restricted", compartments=())
    client = app.test_client()
    sign_in(client, who)
    english(client)
    data = {"email": "hanako@example.co.jp", "name": "鈴木\u202e子花", **extra}
    if url.startswith("/admin"):
        data["organisation_id"] = str(org.id)
    resp = post_form(client, url, data, page=page)
    assert resp.status_code == 400
    assert "U+202E" in error_beside(resp.get_data(as_text=True), "name")
    assert q(app, "SELECT count(*) FROM invitations") == [(0,)]
    assert q(app, "SELECT count(*) FROM outbox") == [(0,)]


# ---------------------------------------------------------------- downloads keep their sandbox

def test_an_attachment_download_keeps_its_sandbox_csp(app, filer):
    rid = new_report(filer)
    page = filer.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    filer.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
               data={"csrf_token": csrf_of(page), "classification": "restricted",
                     "file": (io.BytesIO(b"<html><script>alert(1)</script></html>\n"), "page.txt")})
    [(att_id,)] = q(app, "SELECT id FROM attachments")
    got = filer.get(f"/attachments/{att_id}")
    assert got.status_code == 200
    assert got.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert got.headers.getlist("Content-Security-Policy") == ["default-src 'none'; sandbox"]
    got.close()
    # Every other page keeps the portal's own policy.
    listing = filer.get(f"/reports/{rid}/attachments")
    assert listing.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")


def test_the_notice_pdf_keeps_its_sandbox_csp(app, factory, tmp_path):
    s = app.config["SETTINGS"]
    saved = (s.blob_store, s.blob_dir)
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    try:
        org = factory.org("株式会社通知", facility=True)
        people = {"filer": factory.user("filer", org=org), "reviewer": factory.user("reviewer"),
                  "approver": factory.user("approver")}
        c = {}
        for name, user in people.items():
            c[name] = app.test_client()
            sign_in(c[name], user)
        rid = new_report(c["filer"])
        fill_all(c["filer"], rid)
        assert submit(c["filer"], rid).status_code == 302

        def post(who, url, data=None):
            token = csrf_of(c[who].get(f"/reports/{rid}").get_data(as_text=True))
            resp = c[who].post(url, data={**(data or {}), "csrf_token": token})
            assert resp.status_code == 302, (url, resp.status_code)

        post("reviewer", f"/review/cases/{rid}/take")
        post("reviewer", f"/reports/{rid}/informs", {
            "legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "理由", "conditions": "",
            "internal_rationale": "内部", "rationale_classification": "restricted"})
        [(iid,)] = q(app, "SELECT id FROM informs WHERE report_id = :r", r=rid)
        post("reviewer", f"/informs/{iid}/send")
        from tests.inform_helpers import approve

        assert approve(c["approver"], iid, {"comment": "承認"}).status_code == 302
        for lang in ("ja", "en"):
            got = c["filer"].get(f"/informs/{iid}/notice.pdf?lang={lang}")
            assert got.status_code == 200 and got.data[:5] == b"%PDF-"
            assert got.headers.getlist("Content-Security-Policy") == ["default-src 'none'; sandbox"], lang
    finally:
        s.blob_store, s.blob_dir = saved
