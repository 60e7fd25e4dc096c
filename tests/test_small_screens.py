"""Layouts at 375 px (issue 15): tables become stacked rows named by their column, and the
dashboard's charts have a drawing made for a phone's width instead of a scaled-down one."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report

CSS = (Path(__file__).resolve().parent.parent / "portal" / "static" / "portal.css").read_text()


def _cells_without_label(html: str, table_class: str = "table--stack") -> list[str]:
    table = html.split(table_class, 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [td for td in re.findall(r"<td[^>]*>", body) if "data-label" not in td and "colspan" not in td]


def test_report_list_and_attachments_stack_on_a_phone(app, client, factory):
    org = factory.org(facility=True)
    sign_in(client, factory.user("filer", org=org))
    rid = new_report(client)
    fill_all(client, rid)
    listing = client.get("/reports").get_data(as_text=True)
    assert 'class="table table--dense table--stack"' in listing
    assert _cells_without_label(listing) == []
    files = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    assert "table--stack" in files
    # Only the actions cell (a button that names itself) has no label.
    assert len(_cells_without_label(files)) <= 1
    small = CSS.split("Issue 15 (helper C)", 1)[1]
    media = small.split("@media (max-width: 40rem)", 1)[1]
    assert ".table--stack td[data-label]::before" in media and "attr(data-label)" in media
    assert ".table--stack thead" in media


def test_charts_have_a_phone_drawing_whose_text_is_not_scaled_down():
    from portal.review.charts import NARROW_WIDTH, bars

    chart = bars([("審査中", 12), ("回答待ち", 3), ("とても長い技術の名前" * 4, 1)], "Cases by status")
    wide, narrow = re.findall(r"<svg[^>]*>", str(chart.svg))
    assert "chart--wide" in wide and "chart--narrow" in narrow
    # Drawn at 320 units and never wider than a 375 px screen's column: 12 px text stays ≥ 12 px × 0.9.
    assert f'viewBox="0 0 {NARROW_WIDTH} ' in narrow and f'width="{NARROW_WIDTH}"' in narrow
    assert NARROW_WIDTH <= 375 - 2 * 24
    assert str(chart.svg).count("審査中") == 2 and 'aria-label="Cases by status"' in narrow
    media = CSS.split("Issue 15 (helper C)", 1)[1].split("@media (max-width: 40rem)", 1)[1]
    assert ".chart--wide { display: none; }" in media and ".chart--narrow { display: block;" in media
