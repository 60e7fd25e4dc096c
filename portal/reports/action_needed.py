"""What a company must act on (the home page's 対応が必要 list, with the informs to
acknowledge that ``portal.informs`` adds): the requests for information awaiting its answer
and the reports returned for correction, only those the reader may see."""
from __future__ import annotations

from datetime import date
from functools import lru_cache

from sqlalchemy import and_
from sqlalchemy.orm import Session

from portal.access.policy import Action, Subject, decide
from portal.reports import listing, services
from portal.reports import states as S
from portal.reports.models import Report

LIMIT = 50


@lru_cache(maxsize=1)
def _statement():
    return listing.statement(and_(services.visible_to_company(), Report.status.in_((S.AWAITING, S.RETURNED))),
                             (Report.updated_at.desc(), Report.id.desc()))


def cases(session: Session, subject: Subject, *, today: date, limit: int = LIMIT) -> list[listing.ListedReport]:
    params = {**services.company_params(session, subject), "limit": limit, "offset": 0}
    return [r for r in listing.run(session.connection(), _statement(), params)
            if decide(subject, Action.REPORT_VIEW, r, today=today).allowed]
