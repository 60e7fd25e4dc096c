"""The case state machine (DESIGN §4) as one table. Every transition names the permission it
needs and carries its effects (the clock, the version, the case's end, who is told); the
service asks the policy, applies the row, writes the history and the audit event in one
transaction, or refuses without changing anything. Nothing about a transition is decided
anywhere else."""
from __future__ import annotations

from dataclasses import dataclass

from portal.access.policy import Action
from portal.core.i18n import lazy_gettext as _l

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

# The two notions of an "open" case, each under its own name (they differ about awaiting and
# returned cases, and must not be confused again):
#  - OPEN_STATUSES: submitted and not yet ended. The company may still withdraw it, the
#    dialogue is open, and a planned transfer date that passes while it is open is flagged.
#  - CLOCK_RUNNING: METI holds the case and the review clock counts. The clock stops while the
#    case awaits the company (DESIGN §4): for an answer (awaiting_response) and for the
#    correction of a returned report, which is submitted again and reviewed afresh.
OPEN_STATUSES = (SUBMITTED, UNDER_REVIEW, AWAITING, RETURNED)
CLOCK_RUNNING = (SUBMITTED, UNDER_REVIEW)
CLOCK_PAUSED = (AWAITING, RETURNED)
ENDED = (CLOSED, INFORM_ISSUED, WITHDRAWN)
# The company's working copy can be edited; its next deadline is the file-by date.
WITH_THE_COMPANY = (DRAFT, RETURNED)

# Who a transition's notification goes to.
COMPANY, ASSIGNEE = "company", "assignee"


def status_labels() -> dict[str, str]:
    """The labels in the request's language, translated once per request (lists draw many)."""
    from flask import g

    labels = g.get("status_labels")
    if labels is None:
        labels = g.status_labels = {code: str(label) for code, label in STATUS_LABELS.items()}
    return labels


@dataclass(frozen=True)
class Notify:
    """Who is told that the transition happened (``portal.notifications.notify`` kind): the
    company's filers and administrators, or the case's assignee (not when they did it)."""

    kind: str
    to: str


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    target: str
    permission: Action
    needs_comment: bool = False
    # Effects, applied in this order by ``reports.services.transition``:
    freezes_version: bool = False   # the working copy becomes a new numbered, read-only version
    starts_clock: bool = False      # a (re)submission: the review clock starts from now, nothing paused
    assigns: bool = False           # the case gets an assignee (the one named, else the actor)
    needs_due_date: bool = False    # a response due date after today is required and recorded
    pauses_clock: bool = False      # the case now awaits the company: the review clock stops today
    resumes_clock: bool = False     # the company answered: the days paused are banked, the clock runs
    ends_case: bool = False         # the case is decided or withdrawn: closed_at is set, any pause ends
    reopens_working_copy: bool = False  # the latest version becomes the working copy again
    notify: Notify | None = None


TRANSITIONS: dict[str, Transition] = {t.name: t for t in [
    Transition("submit", frozenset({DRAFT}), SUBMITTED, Action.REPORT_SUBMIT,
               freezes_version=True, starts_clock=True),
    Transition("resubmit", frozenset({RETURNED}), SUBMITTED, Action.REPORT_SUBMIT,
               freezes_version=True, starts_clock=True),
    Transition("withdraw", frozenset(OPEN_STATUSES), WITHDRAWN, Action.REPORT_WITHDRAW, needs_comment=True,
               ends_case=True),
    Transition("take", frozenset({SUBMITTED}), UNDER_REVIEW, Action.REPORT_REVIEW,
               assigns=True, notify=Notify("assigned", ASSIGNEE)),
    Transition("request_info", frozenset({UNDER_REVIEW}), AWAITING, Action.REPORT_REVIEW, needs_comment=True,
               needs_due_date=True, pauses_clock=True, notify=Notify("request", COMPANY)),
    Transition("answer", frozenset({AWAITING}), UNDER_REVIEW, Action.REPORT_SUBMIT,
               resumes_clock=True, notify=Notify("answer", ASSIGNEE)),
    Transition("return", frozenset({UNDER_REVIEW}), RETURNED, Action.REPORT_REVIEW, needs_comment=True,
               pauses_clock=True, reopens_working_copy=True, notify=Notify("returned", COMPANY)),
    Transition("close", frozenset({UNDER_REVIEW}), CLOSED, Action.REPORT_REVIEW, needs_comment=True,
               ends_case=True, notify=Notify("closed", COMPANY)),
    Transition("issue_inform", frozenset({UNDER_REVIEW}), INFORM_ISSUED, Action.INFORM_APPROVE,
               ends_case=True, notify=Notify("inform", COMPANY)),
]}


def allowed_from(status: str) -> list[str]:
    return [t.name for t in TRANSITIONS.values() if status in t.sources]


def _check_table() -> None:
    """The table agrees with the status sets above: a transition into a paused state pauses
    the clock, one out of a paused state ends the pause, and only the ending ones end a case."""
    for t in TRANSITIONS.values():
        assert t.pauses_clock == (t.target in CLOCK_PAUSED), t.name
        assert t.ends_case == (t.target in ENDED), t.name
        if t.sources & set(CLOCK_PAUSED) and t.target not in CLOCK_PAUSED:
            assert t.resumes_clock or t.ends_case or t.starts_clock, t.name
        assert not (t.target in CLOCK_RUNNING and t.sources & set(WITH_THE_COMPANY)) or t.freezes_version, t.name
        assert t.notify is None or t.notify.to in (COMPANY, ASSIGNEE), t.name


_check_table()
