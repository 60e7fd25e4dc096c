"""The audit itself can fail: a page with an unlabelled field and an image without a text
alternative is reported at both widths, and a clean one is not."""
from __future__ import annotations

import pytest

from tests.browser.axe import WIDTHS, Audit

pytestmark = pytest.mark.browser

HEAD = b'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>t</title></head><body><main>'
HEADERS = {"Content-Type": "text/html; charset=utf-8",
           "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:"}


def _served(path: str, body: bytes) -> dict:
    return {"path": path, "status": 200, "headers": HEADERS, "body": HEAD + body + b"</main></body></html>"}


def test_violations_are_found_at_both_widths_under_the_csp(browser):
    audit = Audit("self-test")
    audit.served = [
        _served("/bad", b'<h1>x</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text">'),
        _served("/good", b'<h1>x</h1><label for="q">q</label><input id="q" type="text">'),
        _served("/good", b'<h1>x</h1><label for="q">q</label><input id="q" type="text">'),
    ]
    audit.replay(browser, "http://127.0.0.1:9")  # every document is answered from the record
    by_path = {d["path"]: d for d in audit.documents}
    assert set(by_path) == {"/bad", "/good"} and by_path["/good"]["visits"] == 2
    for w in WIDTHS:
        assert {"image-alt", "label"} <= {v["id"] for v in by_path["/bad"]["violations"][str(w)]}
        assert by_path["/good"]["violations"][str(w)] == []
    assert any("image-alt" in line and "@375px" in line for line in audit.violations())
