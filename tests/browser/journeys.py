"""Counting what a person does on a journey through the portal, in the browser itself.

Every trusted click (a button, a link, a check box, a radio button: what Playwright's click
and check send, as a mouse would) is counted by a listener the context adds to each document,
in sessionStorage so that it survives the navigations. Choosing a file and choosing from a
drop-down are counted by the test (Chromium opens no dialog for them under Playwright).
The results go to test-artifacts/journeys/<database>/ and are printed by tests.browser.axe_report."""
from __future__ import annotations

import json
from pathlib import Path

from tests.browser.axe import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "journeys"

_COUNTER = """
if (!window.__journeyCounting) {
  window.__journeyCounting = true;  // once per document, however many journeys share the context
  addEventListener('click', (e) => {
    if (!e.isTrusted || !sessionStorage) return;
    sessionStorage.setItem('journeyClicks', String(Number(sessionStorage.getItem('journeyClicks') || 0) + 1));
  }, true);
}
"""


class Journey:
    def __init__(self, page):
        self.page = page
        self.files = 0
        self.selects = 0
        self.fields = 0
        page.context.add_init_script(_COUNTER)

    def start(self) -> None:
        """From here on (the page must be one of the portal's, loaded after the context was made)."""
        self.page.evaluate("() => sessionStorage.setItem('journeyClicks', '0')")
        self.files = self.selects = self.fields = 0

    def fill(self, selector: str, value: str) -> None:
        self.page.fill(selector, value)
        self.fields += 1

    def select(self, selector: str, value: str) -> None:
        self.page.select_option(selector, value)
        self.selects += 1

    def choose_file(self, selector: str, files) -> None:
        self.page.set_input_files(selector, files=files)
        self.files += 1

    def clicks(self) -> int:
        return int(self.page.evaluate("() => Number(sessionStorage.getItem('journeyClicks') || 0)"))

    def save(self, name: str, database: str) -> dict:
        result = {"journey": name, "clicks": self.clicks(), "file_choices": self.files,
                  "drop_down_choices": self.selects, "fields_typed": self.fields}
        out = ARTIFACTS / database
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        print(f"journey {name}: {result}")
        return result


def summary(database: str) -> list[str]:
    folder: Path = ARTIFACTS / database
    lines = []
    for p in sorted(folder.glob("*.json")) if folder.exists() else []:
        r = json.loads(p.read_text(encoding="utf-8"))
        lines.append(f"journey {r['journey']} ({database}): {r['clicks']} clicks + {r['file_choices']} file choice(s) "
                     f"+ {r['drop_down_choices']} drop-down choice(s); {r['fields_typed']} fields typed")
    return lines
