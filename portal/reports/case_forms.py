"""A form on the case page refused for what it holds: the case page again (400), the typed
text kept and the error beside its field with the error summary (GOV.UK), rather than a
redirect whose banner loses both. The refused form travels in ``g`` to the case page's own
view, reached through the app (a views module imports no other views module)."""
from __future__ import annotations

from flask import current_app, g

from portal.core.guard import failed
from portal.core.service import ServiceError


def show_again(report, event: str, error: ServiceError, **forms):
    """``forms``: the case page's form names (``withdraw_form``, ``return_form``…) → the
    refused forms, their errors set. The failure is recorded and nothing is changed."""
    failed(error, event, report)
    g.case_forms = forms
    return current_app.view_functions["reports.show"].__wrapped__(obj=report), 400


def kept_forms() -> dict:
    return g.pop("case_forms", {})
