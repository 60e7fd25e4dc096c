"""What reports hand to the packages below them when the app starts: the status labels and
field names the shared templates show, and the column by which the catalogue console counts
the reports filed under each technology. Those packages may not import reports (the layers
contract in pyproject.toml); ``create_app`` calls ``init_app`` instead.
"""
from __future__ import annotations

from flask import Flask

from portal.catalogue import services as catalogue
from portal.reports.content import FIELD_LABELS
from portal.reports.models import Report
from portal.reports.states import status_labels


def status_label(status: str) -> str:
    return status_labels().get(status, status)


def init_app(app: Flask) -> None:
    app.add_template_filter(status_label)
    app.add_template_global(FIELD_LABELS, "field_labels")
    catalogue.count_reports_with(Report.technology_id)
