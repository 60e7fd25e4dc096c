"""The next deadline of a case (DESIGN §4), the one definition every page shows: the company's
list, the home work lists, the case page and the review queue. It reads the one clock
(``portal.reports.clock``) and answers for a viewer, because the company and METI mind
different dates:

- with the company (draft, returned): the file-by date, for both;
- awaiting an answer: the response due date, for both (the transfer date is not what the
  company must act on while METI waits for it);
- METI holds the case (submitted, under review): the review target date for officers, the
  planned transfer date for the company;
- a returned case for officers, or an awaiting case without a due date: the planned transfer;
- an ended case: none.

A deadline is overdue when its date is before today (the review target: when the clock says
the review is past its target, so a paused clock never makes it late).

A planned transfer date that has passed while the case is open is never hidden behind the
deadline shown instead (the response due date, the review target): the deadline carries
``passed_transfer`` and every page says it beside the date. That is also why such a case is on
the officers' overdue list (``clock.overdue_condition``), so the list and the tag agree."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from portal.core.i18n import gettext as _
from portal.reports import states as S
from portal.reports.clock import Clocks, clocks, file_by

FILE_BY, RESPONSE, TRANSFER, REVIEW_TARGET = "file_by", "response", "transfer", "review_target"
TRANSFER_PASSED = "transfer_passed"


@dataclass(frozen=True, slots=True)
class Deadline:
    kind: str
    on: date
    overdue: bool
    passed_transfer: date | None = None  # a planned transfer date already passed, see above


@dataclass(frozen=True, slots=True)
class Shown:
    """A deadline as a page shows it (``portal.core.deadline_markup``)."""
    kind: str
    text: str
    overdue: bool
    note: str = ""  # the planned transfer date that has passed, when another date is shown


def next_deadline(report, today: date, *, officer: bool, target_days: int, known: Clocks | None = None) -> Deadline | None:
    """``report``: a ``Report`` or a list row (``listing.ListedReport``); ``known``: its clocks
    on ``today`` with ``target_days``, when the caller has them already (the review queue)."""
    d = _next(report, today, officer=officer, target_days=target_days, known=known)
    transfer = report.planned_transfer_date
    if d is not None and d.kind != TRANSFER and report.status in S.OPEN_STATUSES \
            and transfer is not None and transfer < today:
        return replace(d, passed_transfer=transfer)
    return d


def _next(report, today: date, *, officer: bool, target_days: int, known: Clocks | None) -> Deadline | None:
    status, transfer = report.status, report.planned_transfer_date
    if status in S.WITH_THE_COMPANY and not (officer and status == S.RETURNED):
        if transfer is None:
            return None
        on = file_by(transfer)
        return Deadline(FILE_BY, on, on < today)
    if status == S.AWAITING and report.response_due:
        return Deadline(RESPONSE, report.response_due, report.response_due < today)
    if officer and status in S.CLOCK_RUNNING:
        c = known if known is not None else clocks(report, today, target_days)
        if c.review_target is not None:
            return Deadline(REVIEW_TARGET, c.review_target, c.review_overdue)
    if status in S.OPEN_STATUSES and transfer:
        return Deadline(TRANSFER, transfer, transfer < today)
    return None


def labels() -> dict[str, str]:
    """The deadline texts in the request's language (a list translates them once per page)."""
    return {FILE_BY: _("File by %(date)s"), RESPONSE: _("Respond by %(date)s"),
            TRANSFER: _("Transfer %(date)s"), REVIEW_TARGET: _("Review target %(date)s"),
            TRANSFER_PASSED: _("Planned transfer date %(date)s has passed")}


def shown(deadline: Deadline | None, loc: str, texts: dict[str, str] | None = None) -> Shown | None:
    from portal.core.templating import jdate

    if deadline is None:
        return None
    texts = texts or labels()
    passed = deadline.passed_transfer
    note = texts[TRANSFER_PASSED] % {"date": jdate(passed, loc)} if passed is not None else ""
    return Shown(deadline.kind, texts[deadline.kind] % {"date": jdate(deadline.on, loc)}, deadline.overdue, note)
