"""Sum up the axe-core records of a browser-test run: `python -m tests.browser.axe_report [database]`.

Prints the documents the tests were shown, the distinct pages (URL with ids folded), the
violations per page at each width, and the counted journeys (tests/browser/journeys.py).
`make test` prints it after each database's run."""
from __future__ import annotations

import json
import sys
from collections import defaultdict

from tests.browser import journeys
from tests.browser.axe import ARTIFACTS, WIDTHS


def summary(database: str) -> list[str]:
    folder = ARTIFACTS / database
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    if not runs:
        return [f"axe-core ({database}): no browser-test records in {folder}"]
    visits = sum(r["visits"] for r in runs)
    pages: dict[str, dict[str, int]] = defaultdict(lambda: {str(w): 0 for w in WIDTHS})
    overflow: set[str] = set()
    distinct = 0
    for r in runs:
        for d in r["documents"]:
            distinct += 1
            for w, vs in d["violations"].items():
                pages[d["page"]][w] += len(vs)
            if d["overflow"].get(str(WIDTHS[-1])):
                overflow.add(d["page"])
    total = {str(w): sum(p[str(w)] for p in pages.values()) for w in WIDTHS}
    lines = [f"axe-core ({database}, WCAG 2.0-2.2 A/AA): {len(runs)} tests, {visits} documents shown, "
             f"{distinct} distinct documents audited, {len(pages)} pages; violations "
             + ", ".join(f"{total[str(w)]} at {w} px" for w in WIDTHS)]
    width = max(len(p) for p in pages)
    for page, counts in sorted(pages.items()):
        lines.append(f"  {page:<{width}}  " + "  ".join(f"{w}px: {counts[str(w)]}" for w in WIDTHS)
                     + ("  (scrolls sideways at 375 px)" if page in overflow else ""))
    return lines


if __name__ == "__main__":
    for db in sys.argv[1:] or ["sqlite", "postgresql"]:
        print("\n".join(summary(db) + journeys.summary(db)))
