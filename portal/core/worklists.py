"""The home page's work lists (DESIGN §10): what waits for the signed-in person. Each list is
built by the feature that owns the work (informs, the review console, the reports), which
the core may not import (the layers contract in pyproject.toml): ``portal.worklists``
registers one provider when the app starts, and the home view asks it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from sqlalchemy.orm import Session


@dataclass(frozen=True, slots=True)
class WorkItem:
    href: str
    reference: str
    what: str                 # why it is on the list, in the reader's language
    deadline: Any = None      # a ``portal.reports.deadlines.Shown``, or None


@dataclass(frozen=True, slots=True)
class WorkList:
    key: str                  # "approval", "company_action", "my_cases", "overdue" (data-test, anchors)
    title: str
    items: list[WorkItem]
    empty: str                # what the list says when nothing waits
    more_href: str | None = None  # the full list, when this one shows only the first items
    more_label: str = ""


Provider = Callable[[Session, Any, Any, date], list[WorkList]]
_provider: Provider | None = None


def provide_with(provider: Provider) -> None:
    global _provider
    _provider = provider


def for_user(session: Session, user, subject, today: date) -> list[WorkList]:
    """The lists for ``user`` (empty when no provider is registered, e.g. a bare test app)."""
    if _provider is None or subject is None:
        return []
    return _provider(session, user, subject, today)
