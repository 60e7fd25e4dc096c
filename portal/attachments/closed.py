"""Why a report's files cannot be added to: the page says so, and who can change it, rather
than showing a list with no form (issue 15). The decision is the policy's and the report's
state; this only words it."""
from __future__ import annotations

from portal.access.policy import Decision
from portal.attachments.services import EDITABLE
from portal.core.i18n import gettext as _


def upload_closed_reason(status: str, decision: Decision) -> str | None:
    """None when the reader may add a file to a report in ``status``; otherwise the reason, in
    the words of the person reading it. ``decision`` is the policy's answer for
    ``attachment.upload`` on the report's working copy."""
    if not decision.allowed and decision.reason == "role":
        # METI staff reach a submitted case: the report's files are the company's own.
        return _("Files on a report are added by the reporting company. To send a document to the company, "
                 "attach it to a message on the case page.")
    if status not in EDITABLE:
        return _("This report has been submitted, so its files can no longer change. To send a further document, "
                 "attach it to a message on the case page; if METI returns the report for correction, you can "
                 "add files here again.")
    if decision.allowed:
        return None
    return {
        "no_clearance": _("You hold no current clearance. Ask your security officer to grant one."),
        "clearance_expired": _("Your clearance has expired. Ask your security officer to renew it."),
        "clearance_level": _("Your clearance is below this report's classification. Ask your security officer."),
        "compartment": _("Your clearance does not cover this report's technology. Ask your security officer."),
        "facility_clearance": _("Your organisation's facility clearance is not valid, so files at this "
                                "classification cannot be added. METI's security officer manages facility clearances."),
        "write_down": _("Your organisation's facility clearance is not valid, so files at this "
                        "classification cannot be added. METI's security officer manages facility clearances."),
        "account_disabled": _("Your account is disabled."),
    }.get(decision.reason, _("You may not add files to this report."))
