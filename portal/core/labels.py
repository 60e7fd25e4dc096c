"""The words people read for the codes the portal stores: case-history steps, inform steps,
audit outcomes and reasons. Codes stay in the database, the audit trail and its exports (they
are what a filter or a verifier matches); pages show these labels instead, in the reader's
language. A code without a label is shown as itself, and tests/test_display_words.py fails
while any code the services can write lacks one."""
from __future__ import annotations

import re
from datetime import date

from portal.core.i18n import gettext, lazy_gettext as _l

# ReportEvent.transition: the state table's transitions, plus the creation of a draft.
CASE_STEPS = {
    "create": _l("Draft created"),
    "submit": _l("Submitted"),
    "resubmit": _l("Corrected and resubmitted"),
    "withdraw": _l("Withdrawn by the company"),
    "take": _l("Review started"),
    "request_info": _l("Request for information"),
    "answer": _l("Answered by the company"),
    "return": _l("Returned for correction"),
    "close": _l("Review completed"),
    "issue_inform": _l("Inform issued"),
    "assign": _l("Case worker changed"),
}

# InformEvent.step
INFORM_STEPS = {
    "draft": _l("Inform drafted"),
    "edit": _l("Inform draft edited"),
    "send_for_approval": _l("Sent for approval"),
    "reject": _l("Approval refused"),
    "approve": _l("Approved"),
    "approve_and_issue": _l("Approved and issued"),
    "issue": _l("Inform issued"),
    "acknowledge": _l("Receipt acknowledged by the company"),
    "licence_application": _l("Licence application reported"),
    "revoke": _l("Inform revoked"),
}

# AuditEvent.action (the console shows the code beside these words: it is what the filter takes).
ACTIONS = {
    "access.denied": _l("Access refused"),
    "account.create": _l("Account created"),
    "account.enable": _l("Account enabled or disabled"),
    "account.password.change": _l("Password changed"),
    "account.role.change": _l("Role changed"),
    "attachment.delete": _l("File deleted"),
    "attachment.download.start": _l("File downloaded"),
    "attachment.upload": _l("File uploaded"),
    "attachment.scan": _l("File checked for malware"),
    "attachment.quarantine": _l("File quarantined by a rescan"),
    "audit.checkpoint.download": _l("Checkpoint downloaded"),
    "audit.export": _l("Audit trail exported"),
    "audit.read": _l("Audit trail read"),
    "auth.2fa": _l("Two-step verification"),
    "auth.2fa.disable": _l("Two-step verification turned off"),
    "auth.2fa.enrol": _l("Two-step verification set up"),
    "auth.2fa.recovery_codes.replace": _l("Recovery codes replaced"),
    "auth.gbiz.link": _l("Account linked to gBizID"),
    "auth.gbiz.link_pending": _l("gBizID link waiting for the password"),
    "auth.gbiz.signin": _l("Sign-in with gBizID"),
    "auth.password.rehash": _l("Password hash renewed"),
    "auth.signin": _l("Sign-in"),
    "auth.signout": _l("Sign-out"),
    "backup.create": _l("Backup taken"),
    "backup.restore": _l("Backup restored"),
    "blobs.clean_partial": _l("Unfinished uploads removed"),
    "catalogue.add": _l("Technology added"),
    "catalogue.delete": _l("Technology deleted"),
    "catalogue.update": _l("Technology changed"),
    "clearance.grant": _l("Clearance granted"),
    "clearance.renew": _l("Clearance renewed"),
    "clearance.revoke": _l("Clearance revoked"),
    "inform.acknowledge": _l("Inform receipt acknowledged"),
    "inform.approve": _l("Inform approved"),
    "inform.draft": _l("Inform drafted"),
    "inform.edit": _l("Inform draft edited"),
    "inform.issue": _l("Inform issued"),
    "inform.licence_application": _l("Licence application reported"),
    "inform.notice.download.start": _l("Inform notice downloaded"),
    "inform.notice.damaged": _l("Stored inform notice found damaged"),
    "inform.reject": _l("Inform approval refused"),
    "inform.revoke": _l("Inform revoked"),
    "inform.send_for_approval": _l("Inform sent for approval"),
    "jobs.daily": _l("Daily job"),
    "keys.retire": _l("Key retired"),
    "keys.rewrap": _l("Keys rewrapped"),
    "message.post": _l("Message posted"),
    "org.create": _l("Organisation registered"),
    "org.facility_clearance.set": _l("Facility clearance set"),
    "api.token.issue": _l("API token issued"),
    "api.token.revoke": _l("API token revoked"),
    "api.token.use": _l("API token used"),
    "org.member.invite": _l("Member invited"),
    "org.member.join": _l("Member joined"),
    "report.assign": _l("Case assigned"),
    "report.create": _l("Draft created"),
    "report.delete": _l("Draft deleted"),
    "report.draft.save": _l("Draft saved"),
    "report.view": _l("Report read"),
}

OUTCOMES = {
    "success": _l("Succeeded"),
    "denied": _l("Refused"),
    "failure": _l("Failed"),
}

# AuditEvent.reason: the policy's denial reasons (DESIGN §3) and the services' refusals.
REASONS = {
    # access policy
    "role": _l("Role does not allow it"),
    "clearance_level": _l("Clearance level too low"),
    "clearance_expired": _l("Clearance expired"),
    "no_clearance": _l("No clearance"),
    "compartment": _l("Technology (need to know) not held"),
    "facility_clearance": _l("Organisation lacks a facility clearance"),
    "other_organisation": _l("Another organisation's object"),
    "account_disabled": _l("Account disabled"),
    "not_signed_in": _l("Not signed in"),
    "write_down": _l("Would write down to a lower classification"),
    "four_eyes": _l("Approver is the drafter (four eyes)"),
    "self": _l("Change to one's own account"),
    "internal": _l("METI-internal material"),
    "draft": _l("Draft not yet submitted"),
    "frozen": _l("Submitted material cannot change"),
    "unknown_action": _l("Unknown action"),
    "unknown_audience": _l("Unknown audience"),
    "unknown_classification": _l("Unknown classification"),
    "unknown_object": _l("Unknown object"),
    "unexpected_object": _l("Unexpected object"),
    "unknown_role": _l("Unknown role"),
    # malware scanning (portal.attachments.scanning)
    "scan_pending": _l("Not yet checked for malware"),
    "scan_error": _l("Malware check failed"),
    "scan_infected": _l("Refused by the malware check"),
    "scan_unknown": _l("Unknown malware-check state"),
    "infected": _l("Malware found"),
    "unscannable": _l("Could not be checked for malware"),
    "error": _l("Malware check failed"),
    "scanner_unavailable": _l("Malware scanner unavailable"),
    # sign-in
    "throttled": _l("Too many attempts"),
    "bad_password": _l("Wrong password"),
    "unknown_account": _l("Unknown account"),
    "disabled": _l("Account disabled"),
    "bad_code": _l("Wrong code"),
    "bad_current_password": _l("Wrong current password"),
    "weak_password": _l("Password too weak"),
    # input and state
    "invalid_input": _l("Invalid input"),
    "illegal_transition": _l("Not possible in the case's current state"),
    "bad_due_date": _l("Invalid response due date"),
    "comment_missing": _l("Comment missing"),
    "reason_missing": _l("Reason missing"),
    "not_editable": _l("Cannot be edited"),
    "case_closed": _l("Case closed"),
    "key_lease_expired": _l("Key lease expired"),
}

# AuditCheckpoint.reason: what a signed checkpoint was made for.
CHECKPOINT_REASONS = {
    "manual": _l("Made by hand"),
    "export": _l("For an export"),
    "daily": _l("Daily"),
    "backup": _l("For a backup"),
}

_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def label(table: dict, code: str | None) -> str:
    if not code:
        return ""
    text = table.get(code)
    return str(text) if text is not None else code


def case_step(code: str | None) -> str:
    return label(CASE_STEPS, code)


def inform_step(code: str | None) -> str:
    return label(INFORM_STEPS, code)


def action(code: str | None) -> str:
    """``report.<transition>`` events take the case-history words for the transition."""
    if code and code not in ACTIONS and code.startswith("report.") and code[7:] in CASE_STEPS:
        return str(CASE_STEPS[code[7:]])
    return label(ACTIONS, code)


def outcome(code: str | None) -> str:
    return label(OUTCOMES, code)


def reason(code: str | None) -> str:
    return label(REASONS, code)


def checkpoint_reason(code: str | None) -> str:
    return label(CHECKPOINT_REASONS, code)


def history_comment(transition: str, comment: str | None, format_date) -> str | None:
    """The comment under a case-history entry. A request for information records its due
    date (ISO; older rows hold it in a sentence in the requester's language): the reader gets
    that date in their own words instead."""
    if not comment or transition != "request_info" or len(comment) > 80:
        return comment
    m = _ISO_DAY.search(comment)
    if m is None:
        return comment
    try:
        due = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return comment
    return gettext("Response due %(date)s", date=format_date(due))
