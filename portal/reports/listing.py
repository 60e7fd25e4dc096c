"""Reports as the lists show them: one statement per page of rows holding the labels and list
keys, and the sealed title (the counterparty's name), which a row opens with its own id when
a page shows it. No ORM object is built and no other sealed column is fetched, because a list
page is what case workers and filers load all day (bench/reports_list.py,
bench/review_console.py).

No list sorts or searches by title: the database holds only its ciphertext."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from sqlalchemy import bindparam, select

from portal.access.policy import Labels, compartment_set
from portal.auth.models import User
from portal.catalogue.models import Technology
from portal.orgs.models import Organisation
from portal.reports.models import Report


@dataclass(frozen=True, slots=True)
class ListedReport:
    id: int
    organisation_id: int
    organisation_name: str
    status: str
    reference: str | None
    sealed_title: bytes
    classification: str
    technology_code: str | None
    technology_name_ja: str | None
    technology_name_en: str | None
    destination_country: str | None
    planned_transfer_date: date | None
    submitted_at: datetime | None
    updated_at: datetime
    closed_at: datetime | None
    assignee_id: int | None
    assignee_name: str | None
    paused_days: int
    awaiting_since: date | None
    response_due: date | None
    compartments: str  # the case's, space-separated ("" before the first submission)
    unread: int = 0  # messages the reader has not read, when the list asked for them
    labels: Labels = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", Labels(
            org_id=self.organisation_id, classification=self.classification,
            compartments=compartment_set(self.compartments) or (
                frozenset((self.technology_code,)) if self.technology_code else frozenset()),
            draft=self.status == "draft"))

    @property
    def title(self) -> str:
        """The counterparty's name, opened when read (a page of 50 opens 50; a list read
        only for its clocks opens none). ``SealedFieldError`` if it was moved or damaged."""
        return Report.title.open(self.id, self.sealed_title) or ""

    def access_labels(self) -> Labels:
        """What the policy reads: the same labels as ``Report.access_labels``."""
        return self.labels

    def technology_label(self, locale: str) -> str:
        if not self.technology_code:
            return ""
        return f"{self.technology_code} {self.technology_name_en if locale == 'en' else self.technology_name_ja}"


_assignee = User.__table__.alias("assignee")
COLUMNS = (Report.id, Report.organisation_id, Organisation.name, Report.status, Report.reference, Report._title,
           Report.classification, Technology.code, Technology.name_ja, Technology.name_en,
           Report.destination_country, Report.planned_transfer_date, Report.submitted_at, Report.updated_at,
           Report.closed_at, Report.assignee_id, _assignee.c.name, Report.paused_days, Report.awaiting_since, Report.response_due,
           Report.compartments)


# The unread-message count is the dialogue's (messages and read marks), and the dialogue
# builds on reports, not the other way round: it hands over its column builder, called as
# (user_id, channels, report_id), and the channels a company reads, when the app starts
# (portal.dialogue.hooks.init_app).
_unread_column: Callable[[Any, Any, Any], Any] | None = None
_company_channels: tuple[str, ...] = ()


def count_unread_with(builder: Callable[[Any, Any, Any], Any], *, company_channels: tuple[str, ...]) -> None:
    global _unread_column, _company_channels
    _unread_column, _company_channels = builder, company_channels


def company_channels() -> tuple[str, ...]:
    """The channels whose unread messages a company's list counts (``unread_channels``)."""
    return _company_channels


def _columns(unread: bool):
    if not unread:
        return COLUMNS
    if _unread_column is None:
        raise RuntimeError("no unread-message count: portal.dialogue.hooks.init_app has not run")
    return COLUMNS + (_unread_column(bindparam("unread_user"), bindparam("unread_channels", expanding=True),
                                     Report.id),)


def _joined(select_):
    return (select_.join(Organisation, Organisation.id == Report.organisation_id)
            .outerjoin(Technology, Technology.id == Report.technology_id)
            .outerjoin(_assignee, _assignee.c.id == Report.assignee_id))


def statement(where, order, *, unread: bool = False):
    """A page of rows matching ``where``; the limit and offset are bound at execution
    (``limit``, ``offset``), and with ``unread`` each case's unread count for ``unread_user``
    in ``unread_channels``."""
    return (_joined(select(*_columns(unread))).where(where).order_by(*order)
            .limit(bindparam("limit")).offset(bindparam("offset")))


def page_of(ids, order, *, unread: bool = False):
    """The rows whose ids another statement chose (``ids``: a subquery with an ``id`` column,
    already one page), in ``order``: the columns and their correlated counts are computed for
    the page's rows only, however deep the page (PostgreSQL computes a select list for every
    row an OFFSET skips)."""
    return (_joined(select(*_columns(unread)).select_from(ids).join(Report, Report.id == ids.c.id))
            .order_by(*order))


def run(conn, stmt, params: dict) -> list[ListedReport]:
    return [ListedReport(*row) for row in conn.execute(stmt, params)]
