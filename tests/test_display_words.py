"""Pages speak the reader's language (issue 15 item 8): English pages carry no Japanese UI
text, Japanese pages no stored codes (event names, outcomes, reasons, roles), dates are
written as people write them, and the audit console refuses a filter it cannot honour."""
from __future__ import annotations

import html as htmllib
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from portal.core.timeutil import today_jst
from tests.conftest import csrf_of, ja, sign_in
from tests.reports_helpers import fill_all, new_report, submit

ROOT = Path(__file__).resolve().parent.parent
JAPANESE = re.compile(r"[\u3000-\u30ff\u31f0-\u31ff\u4e00-\u9fff\uff00-\uffef]")
# User data in the case below is ASCII, so any Japanese on an English page is the portal's own.
ASCII_REPORT = {
    "contact": {"contact_name": "Taro Yamada", "contact_phone": "03-1234-5678"},
    "technology": {"description": "Firing conditions and slurry recipe for 0201 MLCC"},
}


def visible_text(page: str) -> str:
    """What a reader meets: text and the attributes read out or shown, without the language
    switch's own name (日本語 is written in Japanese on purpose, marked lang="ja")."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL)
    page = re.sub(r"<(button|a|span)\b[^>]*\blang=\"ja\"[^>]*>.*?</\1>", " ", page, flags=re.DOTALL)
    attrs = re.findall(r'\b(?:title|aria-label|alt|placeholder)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    return htmllib.unescape(text + " " + " ".join(attrs))


def history_of(page: str) -> str:
    m = re.search(r'<ol class="timeline">(.*?)</ol>', page, flags=re.DOTALL)
    assert m, "no history on the case page"
    return visible_text(m.group(1))


def switch(client, lang: str) -> None:
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    resp = client.post("/language", data={"lang": lang, "next": "/", "csrf_token": csrf_of(page)})
    assert resp.status_code == 302


@pytest.fixture
def world(app, factory):
    """A case that went through a request for information and an answer, a refusal in the
    trail, and the people who read about them; every name and text typed is ASCII."""
    org = factory.org("Sample Electronics KK", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",), level="csi")
    auditor = factory.user("auditor", level="confidential", compartments=())
    admin = factory.user("admin", level="restricted", compartments=())
    fc, rc = app.test_client(), app.test_client()
    sign_in(fc, filer)
    sign_in(rc, reviewer)
    rid = new_report(fc)
    fill_all(fc, rid, ASCII_REPORT)
    assert submit(fc, rid).status_code == 302
    page = rc.get(f"/reports/{rid}").get_data(as_text=True)
    assert rc.post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)}).status_code == 302
    due = today_jst() + timedelta(days=14)
    page = rc.get(f"/reports/{rid}").get_data(as_text=True)
    resp = rc.post(f"/reports/{rid}/messages/external", content_type="multipart/form-data",
                   data={"csrf_token": csrf_of(page), "body": "Please send the shareholding evidence.",
                         "classification": "restricted", "request": "1", "due_date": due.isoformat()})
    assert resp.status_code == 302
    page = fc.get(f"/reports/{rid}").get_data(as_text=True)
    resp = fc.post(f"/reports/{rid}/messages/external", content_type="multipart/form-data",
                   data={"csrf_token": csrf_of(page), "body": "Attached.", "classification": "restricted"})
    assert resp.status_code == 302
    assert fc.get("/audit/").status_code == 403  # a refusal for the trail: reason "role"
    draft = new_report(fc)
    ac, dc, sc = app.test_client(), app.test_client(), app.test_client()
    sign_in(ac, auditor)
    sign_in(dc, admin)
    sign_in(sc, factory.user("security_officer", level="csi", compartments=()))
    return {"rid": rid, "draft": draft, "due": due, "org": org, "filer": filer, "fc": fc, "rc": rc, "ac": ac,
            "dc": dc, "sc": sc}


# ------------------------------------------------------------------ Japanese pages

RAW_CODES = re.compile(r"\((?:create|submit|take|request_info|answer|return|close|withdraw|resubmit)\)"
                       r"|\b(?:request_info|approve_and_issue|send_for_approval|under_review|awaiting_response"
                       r"|success|denied|failure|clearance_level|other_organisation)\b"
                       r"|(?:役割|Role)\s*(?:filer|reviewer|approver|auditor|admin)\b|組織\s*\d+")


def words_only(page: str) -> str:
    """The visible text without what is marked up as a code (the audit console shows an
    action's code beside its words, as the filter takes codes)."""
    return visible_text(re.sub(r"<code\b[^>]*>.*?</code>", " ", page, flags=re.DOTALL))


def no_codes(text: str) -> None:
    found = [text[max(0, m.start() - 60):m.end() + 20] for m in RAW_CODES.finditer(text)]
    assert not found, found


def test_japanese_case_history_and_receipt_have_words_and_dates_not_codes(world):
    for client in (world["fc"], world["rc"]):  # the company and the officer read the same history
        page = client.get(f"/reports/{world['rid']}").get_data(as_text=True)
        history = history_of(page)
        no_codes(history)
        assert not re.search(r"\d{4}-\d{2}-\d{2}", history), history
        for msgid in ("Draft created", "Submitted", "Review started", "Request for information",
                      "Answered by the company"):
            assert ja(msgid) in history, msgid
        # Oldest first, each step with who took it.
        steps = [history.index(ja(msgid)) for msgid in ("Draft created", "Submitted", "Review started")]
        assert steps == sorted(steps), history
        assert world["filer"].name in history, history
        due = world["due"]
        assert ja("Response due %(date)s", date=f"{due.year}年{due.month}月{due.day}日") in history
    # The receipt is an official document: the era year first, then the western one.
    receipt = visible_text(world["fc"].get(f"/reports/{world['rid']}/receipt").get_data(as_text=True))
    today = today_jst()
    assert f"令和{today.year - 2018}年{today.month}月{today.day}日（{today.year}年{today.month}月{today.day}日）" in receipt


def test_japanese_audit_console_names_outcomes_reasons_roles_and_organisations(world):
    ac = world["ac"]
    page = ac.get("/audit/").get_data(as_text=True)
    text = words_only(page)
    no_codes(text)
    # A role (or an organisation's number) alone in a cell is a code shown as if it were a word.
    assert not re.search(r"<td>\s*(?:filer|org_admin|reviewer|approver|auditor|security_officer|admin|\d+)\s*</td>",
                         page.replace("<td><a", "<td>-<a"))
    for msgid in ("Succeeded", "Refused", "Role does not allow it"):
        assert ja(msgid) in text, msgid
    assert "Sample Electronics KK" in text  # the organisation by its name, not its number
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{1,2}:\d{2}:\d{2}", text)  # JST to the second
    denied = re.search(r'href="/audit/(\d+)"[^<]*</a></td>(?:(?!</tr>).)*' + re.escape(ja("Refused")), page, flags=re.DOTALL)
    assert denied, "no refused event listed"
    event_page = ac.get(f"/audit/{denied.group(1)}").get_data(as_text=True)
    event = words_only(event_page)
    no_codes(event)
    assert ja("Role does not allow it") in event
    assert re.search(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\b", event_page)  # as exported, said so


def test_japanese_checkpoints_and_outbox_have_no_backticks_or_key_id(world):
    page = visible_text(world["ac"].get("/audit/checkpoints").get_data(as_text=True))
    assert "`" not in page and "key id" not in page and ja("Key identifier") in page
    outbox = world["dc"].get("/admin/outbox").get_data(as_text=True)
    assert "`" not in visible_text(outbox)


# ------------------------------------------------------------------ English pages

def main_pages(world) -> dict:
    rid, draft = world["rid"], world["draft"]
    steps = [f"/reports/{draft}/edit/{step}" for step in ("contact", "technology", "counterparty", "transfer", "measures")]
    return {
        world["fc"]: ["/", f"/reports/{rid}", "/reports", f"/reports/{rid}/attachments", f"/reports/{rid}/receipt",
                      "/account", "/notifications", *steps, f"/reports/{draft}/check"],
        world["rc"]: ["/", f"/reports/{rid}", "/review/queue", "/notifications"],
        world["ac"]: ["/", "/audit/", "/audit/checkpoints"],
        world["dc"]: ["/admin/outbox", "/admin/users", "/admin/organisations"],
        world["sc"]: ["/security/clearances", f"/security/clearances/{world['filer'].id}",
                      f"/security/organisations/{world['org'].id}/facility"],
    }


def test_japanese_main_pages_show_no_stored_codes(world):
    for client, urls in main_pages(world).items():
        for url in urls:
            resp = client.get(url)
            assert resp.status_code == 200, (url, resp.status_code)
            no_codes(words_only(resp.get_data(as_text=True)))


def test_english_pages_carry_no_japanese_ui_text(world):
    rid = world["rid"]
    pages = main_pages(world)
    seen = 0
    for client, urls in pages.items():
        switch(client, "en")
        for url in urls:
            resp = client.get(url)
            assert resp.status_code == 200, (url, resp.status_code)
            text = visible_text(resp.get_data(as_text=True))
            if url == "/admin/outbox":  # mail is written in both languages on purpose: drop the bodies
                text = visible_text(re.sub(r'<article class="mail">.*?</article>', " ",
                                           resp.get_data(as_text=True), flags=re.DOTALL))
            text = text.replace("東京都", " ")  # the test organisations' address: user data
            found = [(m.group(0), text[max(0, m.start() - 40):m.end() + 40]) for m in JAPANESE.finditer(text)]
            assert not found, (url, found[:5])
            assert not re.search(r"\d:\d{2}:\d{2} [AP]M|\+0900", text), url
            seen += 1
    assert seen == sum(len(urls) for urls in pages.values())
    history = history_of(world["fc"].get(f"/reports/{rid}").get_data(as_text=True))
    due = world["due"]
    assert f"Response due {due.day} " in history and "Request for information" in history


# ------------------------------------------------------------------ dates

def test_date_and_time_filters(app):
    from portal.core.templating import jdate, jdatetime, official_date

    moment = datetime(2026, 11, 30, 22, 31, 59, tzinfo=timezone.utc)  # 1 December, 07:31:59 in Tokyo
    with app.test_request_context():
        assert jdate(date(2026, 12, 1), "ja") == "2026年12月1日"
        assert jdate(date(2026, 12, 1), "en") == "1 December 2026"
        assert jdatetime(moment, "ja") == "2026年12月1日 7:31"
        assert jdatetime(moment, "en") == "1 Dec 2026, 07:31 JST"
        assert jdatetime(moment, "en", seconds=True) == "1 Dec 2026, 07:31:59 JST"
        assert jdate(moment.replace(tzinfo=None), "ja") == "2026年12月1日 7:31"  # stored naive = UTC
        assert official_date(date(2026, 12, 1), "ja") == "令和8年12月1日（2026年12月1日）"
        assert official_date(date(2019, 5, 1), "ja") == "令和元年5月1日（2019年5月1日）"
        assert official_date(date(2019, 4, 30), "ja") == "平成31年4月30日（2019年4月30日）"
        assert official_date(date(2026, 12, 1), "en") == "1 December 2026"


def test_every_code_the_services_write_has_a_label():
    """A new transition, inform step or policy reason without words fails here, not on a page."""
    from portal.core import labels
    from portal.reports.states import TRANSITIONS

    assert not set(TRANSITIONS) - set(labels.CASE_STEPS)
    inform_src = (ROOT / "portal/informs/services.py").read_text()
    steps = set(re.findall(r"_event\(session, inform, actor, \"([a-z_]+)\"", inform_src))
    assert steps and not steps - set(labels.INFORM_STEPS), steps - set(labels.INFORM_STEPS)
    actions = set()
    for path in (ROOT / "portal").rglob("*.py"):
        src = path.read_text()
        actions |= set(re.findall(r"(?:record|audit)\(\s*(?:session, |s, )?\"([a-z_.0-9]+)\"", src))
        actions |= set(re.findall(r"\bevent=\"([a-z_.0-9]+)\"", src))
    actions |= {f"report.{name}" for name in TRANSITIONS}
    assert len(actions) > 40 and not {a for a in actions if labels.action(a) == a}
    policy_src = (ROOT / "portal/access/policy.py").read_text()
    reasons = set(re.findall(r"_deny\(\"([a-z_]+)\"", policy_src))
    assert reasons and not reasons - set(labels.REASONS), reasons - set(labels.REASONS)


# ------------------------------------------------------------------ the audit filter

def test_reversed_or_bad_date_range_is_an_error_beside_the_field(world):
    ac = world["ac"]
    resp = ac.get("/audit/?from=2026-12-05&to=2026-12-01")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert ja("The end date must be the same as or after the start date.") in page
    assert 'id="f-to-error"' in page and 'aria-invalid="true"' in page and ja("Error: ") in page
    assert ja("No events match.") not in page  # not an empty result that reads as "nothing happened"
    bad = ac.get("/audit/?from=2026-13-45").get_data(as_text=True)
    assert 'id="f-from-error"' in bad
    # The export link of the same filter leads back to the error, not to an empty signed file.
    resp = ac.get("/audit/export?format=csv&from=2026-12-05&to=2026-12-01")
    assert resp.status_code == 302 and "/audit/" in resp.location and "format" not in resp.location
    ok = ac.get(f"/audit/?from={today_jst().isoformat()}&to={today_jst().isoformat()}").get_data(as_text=True)
    assert 'id="f-to-error"' not in ok and "Sample Electronics KK" in ok


def test_export_says_its_times_are_utc(world):
    import json

    body = world["ac"].get("/audit/export?format=jsonl").get_data(as_text=True).splitlines()
    first, manifest = json.loads(body[0]), json.loads(body[-1])["manifest"]
    assert first["occurred_at"].endswith("Z")
    assert manifest["time_zone"] == "UTC" and manifest["filter_days"] == "JST"


def test_cli_export_refuses_a_reversed_range_and_writes_nothing(app, tmp_path):
    from tests.conftest import audit_events
    from tests.test_audit_verify_stored import portal

    out = tmp_path / "trail.jsonl"
    before = len(audit_events(app))
    r = portal(app, "audit", "export", "--out", str(out), "--from", "2026-12-05", "--to", "2026-12-01")
    assert r.returncode == 2 and "--to" in (r.stdout or "") + (r.stderr or "") and not out.exists()
    r = portal(app, "audit", "export", "--out", str(out), "--from", "2026-02-30")
    assert r.returncode == 2 and "--from" in (r.stdout or "") + (r.stderr or "") and not out.exists()
    assert len(audit_events(app)) == before  # not even an export event
