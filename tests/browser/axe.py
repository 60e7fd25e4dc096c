"""axe-core on every document the browser tests were shown, at 1280 and 375 px.

The live server records every HTML page the browser was sent: each navigation's document
(Sec-Fetch-Dest: document), forms re-shown with errors after a POST included, and the page
upload.js fetches and shows in place of the form. When the test ends, each one is
replayed in a fresh page at its own URL, with its own headers (so under the production CSP),
its stylesheet and script loaded from the live server, and axe runs at each width. Replaying
after the fact, rather than auditing in the middle of the flow, keeps the test's own steps and
timing untouched (Playwright cannot evaluate in a page while one of its navigations is held).

axe is evaluated through the DevTools protocol (page.evaluate), which the page's CSP does not
govern, so the CSP stays on: a context with bypass_csp would also hide any inline script or
style the portal itself slipped in.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "axe"
WIDTHS = (1280, 375)
HEIGHT = 800
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: what DESIGN §10 and the issue ask for.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]

_CSRF = re.compile(rb'name="csrf_token" value="[^"]*"|name="csrf-token" content="[^"]*"')
_RUN = """async (tags) => {
  await new Promise(r => document.readyState === 'complete' ? r() : addEventListener('load', r, {once: true}));
  const res = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return {
    title: document.title,
    overflow: document.documentElement.scrollWidth > window.innerWidth,
    violations: res.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.map(n => n.target.join(' '))})),
  };
}"""


def axe_source() -> str:
    if not AXE_JS.exists():
        raise RuntimeError(f"{AXE_JS} is missing: run `npm ci` (`make test` does)")
    return AXE_JS.read_text(encoding="utf-8")


def pattern_of(url: str) -> str:
    """/reports/12/edit/contact?x=1 → /reports/{n}/edit/contact: the page, not the instance."""
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("#")[0]
    path, _, _query = path.partition("?")
    return re.sub(r"/\d+(?=/|$)", "/{n}", path) or "/"


@dataclass
class Audit:
    """Every document one test was shown, with axe's violations at each width."""

    test: str
    served: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def recorder(self, app):
        """WSGI middleware in front of the app: keeps each HTML page sent to the browser."""

        def wsgi(environ, start_response):
            # "empty": upload.js sends a file by XHR and shows the page the server answers with.
            if environ.get("HTTP_SEC_FETCH_DEST") not in {"document", "empty"}:
                return app(environ, start_response)
            seen: dict[str, Any] = {}

            def keep(status, headers, exc_info=None):
                seen["status"], seen["headers"] = status, headers
                return start_response(status, headers, exc_info)

            chunks = app(environ, keep)
            try:
                body = b"".join(chunks)
            finally:
                getattr(chunks, "close", lambda: None)()
            headers = dict(seen.get("headers") or [])
            if headers.get("Content-Type", "").startswith("text/html") and not seen["status"].startswith("3"):
                query = environ.get("QUERY_STRING")
                self.served.append({"path": environ.get("PATH_INFO", "/") + (f"?{query}" if query else ""),
                                    "status": int(seen["status"].split()[0]), "headers": headers, "body": body})
            return [body]

        return wsgi

    def replay(self, browser, base_url: str) -> None:
        """Audit each distinct document served (the same page with another CSRF token is the same)."""
        started = time.monotonic()
        source = axe_source()
        done: dict[str, dict[str, Any]] = {}
        shown: dict[str, Any] = {}
        context = browser.new_context(base_url=base_url, viewport={"width": WIDTHS[0], "height": HEIGHT})
        try:
            page = context.new_page()
            page.route("**/*", _fulfil_navigations_with(shown))
            for doc in self.served:
                key = hashlib.sha256(_CSRF.sub(b"", doc["body"])).hexdigest()
                if key in done:
                    done[key]["visits"] += 1
                    continue
                shown.update(doc)
                page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
                page.goto(base_url + doc["path"], wait_until="load")
                page.evaluate(source)
                per_width, overflow, title = {}, {}, ""
                for width in WIDTHS:
                    page.set_viewport_size({"width": width, "height": HEIGHT})
                    result = page.evaluate(_RUN, TAGS)
                    per_width[str(width)] = result["violations"]
                    overflow[str(width)] = result["overflow"]
                    title = result["title"]
                done[key] = {"path": doc["path"], "page": pattern_of(doc["path"]), "status": doc["status"],
                             "title": title, "visits": 1, "violations": per_width, "overflow": overflow}
                self.documents.append(done[key])
        finally:
            context.close()
        self.seconds = round(time.monotonic() - started, 2)

    def violations(self) -> list[str]:
        lines = []
        for d in self.documents:
            for width, vs in d["violations"].items():
                for v in vs:
                    lines.append(f"{d['path']} ({d['title']}) @{width}px [{v['impact']}] {v['id']}: {v['help']} "
                                 f"— {', '.join(v['targets'][:5])}")
        return lines

    def save(self, database: str) -> Path:
        out = ARTIFACTS / database
        out.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.test)
        path = out / f"{name}.json"
        path.write_text(json.dumps({"test": self.test, "visits": len(self.served), "audit_seconds": self.seconds,
                                    "documents": self.documents},
                                   ensure_ascii=False, indent=1), encoding="utf-8")
        return path


def _fulfil_navigations_with(shown: dict[str, Any]):
    """The recorded document for the page's navigations; its stylesheet and script come live."""

    def handler(route) -> None:
        if route.request.is_navigation_request():
            route.fulfill(status=shown["status"], headers=shown["headers"], body=shown["body"])
        else:
            route.continue_()

    return handler
