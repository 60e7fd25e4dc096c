"""The designated-technology catalogue: data with effective dates, kept by an admin."""
from __future__ import annotations

import re
import time
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.audit.trail import record
from portal.catalogue.models import Technology
from portal.core.forms import normalise_code
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.text import control_problem


# The lists' technology filters are drawn on every list page; their options are kept per
# process for a minute. A catalogue change shows at once in the process that made it and
# within FILTER_TTL elsewhere; the filing form's choices are always read afresh.
FILTER_TTL = 60.0
_filter_options: dict[tuple[date, str], tuple[float, tuple[tuple[str, str], ...]]] = {}


def filter_options(session: Session, on: date, locale: str) -> tuple[tuple[str, str], ...]:
    """(code, "code name") of the entries in force on ``on``, for the lists' filters."""
    now = time.monotonic()
    hit = _filter_options.get((on, locale))
    if hit is not None and now - hit[0] < FILTER_TTL:
        return hit[1]
    options = tuple((t.code, f"{t.code} {t.name(locale)}") for t in session.execute(
        select(Technology).where(Technology.effective_from <= on,
                                 (Technology.effective_until.is_(None)) | (Technology.effective_until >= on))
        .order_by(Technology.code)).scalars())
    if len(_filter_options) > 16:
        _filter_options.clear()
    _filter_options[(on, locale)] = (now, options)
    return options


def _catalogue_changed() -> None:
    _filter_options.clear()


def all_entries(session: Session) -> list[Technology]:
    return list(session.execute(select(Technology).order_by(Technology.code)).scalars())


# Reports name a technology, and reports sit above the catalogue: they hand over the column
# to count (``Report.technology_id``) when the app starts (portal.reports.hooks.init_app).
_reports_column = None


def count_reports_with(column) -> None:
    global _reports_column
    _reports_column = column


def usage(session: Session) -> dict[int, int]:
    """Reports filed under each entry (by id), for the console."""
    if _reports_column is None:
        return {}
    col = _reports_column
    rows = session.execute(select(col, func.count()).group_by(col)).all()
    return {tid: n for tid, n in rows if tid is not None}


def _references():
    """Every column that refers to an entry through a foreign key, read from the schema, so
    that whatever names a technology (a report, a version, a clearance's compartments, and any
    table added later) keeps it from deletion without this package importing its owner."""
    target = f"{Technology.__tablename__}.id"
    return [fk.parent for table in Technology.metadata.tables.values() for fk in table.foreign_keys
            if fk.target_fullname == target]


# A technology code: "T" and two or three digits (T01 … T19 as designated, T20 … T999 for later
# additions). Typed in full width or lower case it is the same code.
CODE_PATTERN = re.compile(r"T[0-9]{2,3}")


def _check_names(name_ja: str, name_en: str) -> None:
    for field, value in (("name_ja", name_ja), ("name_en", name_en)):
        problem = control_problem(value)
        if problem:
            raise ServiceError(problem, field=field, reason="control_character")


def add(session: Session, *, code: str, name_ja: str, name_en: str, effective_from: date, actor, ip) -> Technology:
    problem = control_problem(code)
    if problem:
        raise ServiceError(problem, field="code", reason="control_character")
    code = (normalise_code(code) or "").upper()
    if not CODE_PATTERN.fullmatch(code):
        raise ServiceError(_("Enter a code of the letter T and two or three digits, for example T20."), field="code",
                           reason="bad_code")
    _check_names(name_ja, name_en)
    if session.execute(select(Technology.id).where(Technology.code == code)).first():
        raise ServiceError(_("An entry with this code already exists."), field="code", reason="duplicate_code")
    t = Technology(code=code, name_ja=name_ja.strip(), name_en=name_en.strip(), effective_from=effective_from)
    session.add(t)
    session.flush()
    _catalogue_changed()
    record(session, "catalogue.add", actor=actor, source_ip=ip, target_type="technology", target_id=t.code,
           details={"effective_from": effective_from.isoformat()})
    return t


def update(session: Session, t: Technology, *, name_ja: str, name_en: str, effective_until: date | None, actor, ip) -> None:
    _check_names(name_ja, name_en)
    if effective_until is not None and effective_until < t.effective_from:
        raise ServiceError(_("The end date cannot be before the start date."), field="effective_until",
                           reason="end_before_start")
    changes = {}
    if (name_ja.strip(), name_en.strip()) != (t.name_ja, t.name_en):
        changes["renamed"] = True
    if effective_until != t.effective_until:
        changes["effective_until"] = effective_until.isoformat() if effective_until else None
    t.name_ja, t.name_en, t.effective_until = name_ja.strip(), name_en.strip(), effective_until
    _catalogue_changed()
    record(session, "catalogue.update", actor=actor, source_ip=ip, target_type="technology", target_id=t.code,
           details=changes)


def delete(session: Session, t: Technology, *, actor, ip) -> None:
    """Only an entry nothing refers to: no report, no version, no clearance compartment."""
    used = any(session.execute(select(col).where(col == t.id).limit(1)).first() for col in _references())
    if used:
        raise ServiceError(_("This entry is used by reports or clearances and cannot be deleted. End-date it instead."),
                           reason="in_use")
    _catalogue_changed()
    record(session, "catalogue.delete", actor=actor, source_ip=ip, target_type="technology", target_id=t.code)
    session.delete(t)
