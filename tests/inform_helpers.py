"""Approving an inform as a person does it: from its confirmation page, which alone carries
the digest the approval requires (the case page's old one-click form does not)."""
from __future__ import annotations

import re

from tests.conftest import csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, submit


def confirmation_of(html: str) -> str | None:
    m = re.search(r'name="confirmed" type="hidden" value="([0-9a-f]+)"', html) or \
        re.search(r'name="confirmed" value="([0-9a-f]+)"', html)
    return m.group(1) if m else None


def approve_form(client, inform_id: int, data: dict | None = None) -> dict | None:
    """The form the confirmation page posts (with ``data`` added), or None when the page
    offers none (not pending, not the reader's to decide)."""
    resp = client.get(f"/informs/{inform_id}/confirm")
    if resp.status_code != 200:
        return None
    html = resp.get_data(as_text=True)
    confirmed = confirmation_of(html)
    if confirmed is None:
        return None
    return {**(data or {}), "csrf_token": csrf_of(html), "confirmed": confirmed}


def approve(client, inform_id: int, data: dict | None = None, *, fallback_token: str | None = None):
    """POST the approval as the confirmation page does; where the page offers no form, the
    bare POST a crafted request would make (with ``fallback_token``)."""
    form = approve_form(client, inform_id, data)
    if form is None:
        token = fallback_token or csrf_of(client.get("/").get_data(as_text=True))
        form = {**(data or {}), "csrf_token": token}
    return client.post(f"/informs/{inform_id}/approve", data=form)


def make_case(app, factory, tmp_path) -> dict:
    """A submitted T01 case taken by a reviewer, with an approver and the filer, each signed in."""
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("株式会社インフォーム", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",))
    approver = factory.user("approver", compartments=("T01",))
    clients = {name: app.test_client() for name in ("filer", "reviewer", "approver")}
    for name, user in (("filer", filer), ("reviewer", reviewer), ("approver", approver)):
        sign_in(clients[name], user)
    rid = new_report(clients["filer"])
    fill_all(clients["filer"], rid)
    submit(clients["filer"], rid)
    page = clients["reviewer"].get(f"/reports/{rid}").get_data(as_text=True)
    clients["reviewer"].post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)})
    return {"rid": rid, "u_filer": filer, "u_reviewer": reviewer, "u_approver": approver, **clients}
