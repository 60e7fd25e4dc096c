"""Markup rules every page keeps (issue 15): the menu marks the current page; ids are unique
on the case page (every label points at its own field); /favicon.ico is served."""
from __future__ import annotations

import re
from collections import Counter

from tests.conftest import sign_in
from tests.test_informs import case, draft_and_send  # noqa: F401  (a fixture)


def duplicate_ids(html: str) -> list[str]:
    ids = Counter(re.findall(r'\sid="([^"]+)"', html))
    return sorted(i for i, n in ids.items() if n > 1)


def dangling_labels(html: str) -> list[str]:
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    return sorted(f for f in re.findall(r'<label[^>]*\sfor="([^"]+)"', html) if f not in ids)


def test_case_page_ids_are_unique_for_every_reader(app, case):  # noqa: F811  (the imported fixture)
    rid = case["rid"]
    draft_and_send(case)
    for who in ("filer", "reviewer", "approver"):
        html = case[who].get(f"/reports/{rid}").get_data(as_text=True)
        assert duplicate_ids(html) == [], who
        assert dangling_labels(html) == [], who


def test_menu_marks_the_current_page(app, client, factory):
    sign_in(client, factory.user("filer", org=factory.org(facility=True)))
    html = client.get("/reports").get_data(as_text=True)
    nav = html.split('<nav class="nav"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'<a href="([^"]+)" aria-current="page"', nav) == ["/reports"]
    home = client.get("/").get_data(as_text=True).split('<nav class="nav"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'<a href="([^"]+)" aria-current="page"', home) == ["/"]


def test_favicon_is_served(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.data[:4] == b"\x00\x00\x01\x00" and len(resp.data) < 10_000
    assert resp.headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")


def test_case_page_form_errors_appear_beside_the_field(app, case):  # noqa: F811  (the imported fixture)
    from tests.conftest import audit_events, csrf_of

    rid = case["rid"]
    reviewer = case["reviewer"]
    token = csrf_of(reviewer.get(f"/reports/{rid}").get_data(as_text=True))
    long_text = "修正してください。" + "x" * 10001
    resp = reviewer.post(f"/review/cases/{rid}/return", data={"csrf_token": token, "comment": long_text})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'id="return-comment-error"' in html and 'href="#return-comment"' in html  # beside it, and summarised
    assert long_text in html  # what was typed is kept
    assert "<details class=\"details\" open>" in html  # the form is open to see
    assert duplicate_ids(html) == [] and dangling_labels(html) == []
    resp = reviewer.post(f"/review/cases/{rid}/close", data={"csrf_token": token, "summary": ""})
    assert resp.status_code == 400 and 'id="close-summary-error"' in resp.get_data(as_text=True)
    assert [e.outcome for e in audit_events(app, "report.return")] == ["failure"]
    assert [e.outcome for e in audit_events(app, "report.close")] == ["failure"]
    # The company's withdrawal without a reason: the same pattern, and the case unchanged.
    filer = case["filer"]
    token = csrf_of(filer.get(f"/reports/{rid}").get_data(as_text=True))
    resp = filer.post(f"/reports/{rid}/withdraw", data={"csrf_token": token, "comment": ""})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="withdraw-comment-error"' in html and 'href="#withdraw-comment"' in html
    page = filer.get(f"/reports/{rid}").get_data(as_text=True)
    assert 'id="withdraw-comment-error"' not in page  # shown once, not kept for later visits
