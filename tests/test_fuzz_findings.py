"""What the generative tests (tests/test_fuzz_routes.py) found, each as a plain regression test."""
from __future__ import annotations

import time

from tests.conftest import sign_in


def test_healthz_answers_a_signed_in_caller_at_once(app, client, factory):
    """On SQLite the request of a signed-in caller holds the write lock from the moment its
    session is looked up; /healthz's own connection waited for it (30 s) and answered 503."""
    sign_in(client, factory.user("filer"))
    started = time.monotonic()
    resp = client.get("/healthz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["database"] == "ok"
    assert time.monotonic() - started < 5
