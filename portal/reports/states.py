"""The case state machine (DESIGN §4) as one table. Every transition names the permission it
needs; the service asks the policy, moves the state, writes the history and the audit event
in one transaction, or refuses without changing anything."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal.access.policy import Action

DRAFT, SUBMITTED, UNDER_REVIEW, AWAITING, RETURNED, CLOSED, INFORM_ISSUED, WITHDRAWN = (
    "draft", "submitted", "under_review", "awaiting_response", "returned", "closed", "inform_issued", "withdrawn")

STATUS_LABELS = {
    DRAFT: _l("Draft"),
    SUBMITTED: _l("Submitted"),
    UNDER_REVIEW: _l("Under review"),
    AWAITING: _l("Awaiting response"),
    RETURNED: _l("Returned for correction"),
    CLOSED: _l("Closed"),
    INFORM_ISSUED: _l("Inform issued"),
    WITHDRAWN: _l("Withdrawn"),
}
OPEN_STATUSES = (SUBMITTED, UNDER_REVIEW, AWAITING, RETURNED)


def status_labels() -> dict[str, str]:
    """The labels in the request's language, translated once per request (lists draw many)."""
    from flask import g

    labels = g.get("status_labels")
    if labels is None:
        labels = g.status_labels = {code: str(label) for code, label in STATUS_LABELS.items()}
    return labels


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    target: str
    permission: Action
    needs_comment: bool = False


TRANSITIONS: dict[str, Transition] = {t.name: t for t in [
    Transition("submit", frozenset({DRAFT}), SUBMITTED, Action.REPORT_SUBMIT),
    Transition("resubmit", frozenset({RETURNED}), SUBMITTED, Action.REPORT_SUBMIT),
    Transition("withdraw", frozenset(OPEN_STATUSES), WITHDRAWN, Action.REPORT_WITHDRAW, needs_comment=True),
    Transition("take", frozenset({SUBMITTED}), UNDER_REVIEW, Action.REPORT_REVIEW),
    Transition("request_info", frozenset({UNDER_REVIEW}), AWAITING, Action.REPORT_REVIEW, needs_comment=True),
    Transition("answer", frozenset({AWAITING}), UNDER_REVIEW, Action.REPORT_SUBMIT),
    Transition("return", frozenset({UNDER_REVIEW}), RETURNED, Action.REPORT_REVIEW, needs_comment=True),
    Transition("close", frozenset({UNDER_REVIEW}), CLOSED, Action.REPORT_REVIEW, needs_comment=True),
    Transition("issue_inform", frozenset({UNDER_REVIEW}), INFORM_ISSUED, Action.INFORM_APPROVE),
]}


def allowed_from(status: str) -> list[str]:
    return [t.name for t in TRANSITIONS.values() if status in t.sources]
