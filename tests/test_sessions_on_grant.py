"""Granting a clearance signs the holder out only when it takes access away (issue 15): a
lower level, a compartment dropped or an earlier expiry ends every session; a grant that only
adds keeps them, and the new access applies at the holder's next request."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from portal.core.timeutil import today_jst
from tests.conftest import audit_events, post_form, sign_in
from tests.test_clearance_console import sessions_of

FAR = (today_jst() + timedelta(days=3000)).isoformat()


@pytest.fixture
def officer(app, factory):
    officer = factory.user("security_officer")
    client = app.test_client()
    sign_in(client, officer)
    return client


def _holder(app, factory, **kw):
    user = factory.user("filer", expires_on=today_jst() + timedelta(days=3000), **kw)  # no TOTP: two sign-ins
    client = app.test_client()
    sign_in(client, user)
    return user, client


def _grant(officer, user_id, level, compartments, expires_on=FAR):
    resp = post_form(officer, f"/security/clearances/{user_id}/grant",
                     {"level": level, "compartments": compartments, "expires_on": expires_on, "reason": "変更"},
                     page=f"/security/clearances/{user_id}")
    assert resp.status_code == 302, resp.get_data(as_text=True)[-1500:]


@pytest.mark.parametrize("level, compartments, expires_on", [
    ("confidential", ["T01", "T08"], FAR),            # a compartment added
    ("csi", ["T01"], FAR),                              # a higher level
    ("confidential", ["T01"], (today_jst() + timedelta(days=3500)).isoformat()),  # a later expiry
])
def test_widening_keeps_the_holder_signed_in(app, factory, officer, level, compartments, expires_on):
    user, client = _holder(app, factory, level="confidential", compartments=("T01",))
    _grant(officer, user.id, level, compartments, expires_on)
    assert sessions_of(app, user.id) == 1
    assert client.get("/account").status_code == 200
    [ev] = audit_events(app, "clearance.renew")
    assert json.loads(ev.details)["sessions_revoked"] is False


@pytest.mark.parametrize("level, compartments, expires_on", [
    ("restricted", ["T01", "T08"], FAR),               # a lower level, even with more compartments
    ("confidential", ["T08"], FAR),                     # T01 dropped
    ("confidential", ["T01"], (today_jst() + timedelta(days=30)).isoformat()),  # an earlier expiry
])
def test_narrowing_signs_the_holder_out_everywhere(app, factory, officer, level, compartments, expires_on):
    user, client = _holder(app, factory, level="confidential", compartments=("T01",))
    second = app.test_client()
    sign_in(second, user)
    assert sessions_of(app, user.id) == 2
    _grant(officer, user.id, level, compartments, expires_on)
    assert sessions_of(app, user.id) == 0
    assert client.get("/account").status_code == 302 and second.get("/account").status_code == 302
    [ev] = audit_events(app, "clearance.renew")
    assert json.loads(ev.details)["sessions_revoked"] is True


def test_first_grant_keeps_a_signed_in_person_signed_in(app, factory, officer):
    user, client = _holder(app, factory, level=None)
    _grant(officer, user.id, "restricted", ["T01"])
    assert sessions_of(app, user.id) == 1 and client.get("/account").status_code == 200
