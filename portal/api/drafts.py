"""Writing a draft through the API with the web's rules: each step the client's fields touch
is merged with what the draft holds, parsed by that step's own form (the same validators as
the page) and saved by the same service call (``reports.services.save_step``)."""
from __future__ import annotations

from datetime import date

from werkzeug.datastructures import MultiDict

from portal import db
from portal.api.problems import FieldErrors
from portal.reports import content as C, services
from portal.reports.forms import STEP_FORMS, to_values


def _as_form_value(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["y"] if value else []
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    if isinstance(value, date):
        return [value.isoformat()]
    return [str(value)]


def formdata(values: dict) -> MultiDict:
    md: MultiDict = MultiDict()
    for name, value in values.items():
        for v in _as_form_value(value):
            md.add(name, v)
    return md


def apply(report, fields: dict, *, subject, actor, today: date, ip: str | None) -> dict[str, str]:
    """Save the steps ``fields`` touch; returns the warnings. Raises FieldErrors (nothing
    saved: the request path rolls back) when a form or the service refuses any field."""
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}
    s = db.session()
    for step in C.STEPS:
        sent = {k: fields[k] for k in C.STEP_FIELDS[step] if k in fields}
        if not sent:
            continue
        merged = {k: report.draft_data.get(k) for k in C.STEP_FIELDS[step]}
        merged.update(sent)
        form = STEP_FORMS[step](formdata=formdata(merged), meta={"csrf": False})
        if not form.validate():
            errors.update({name: str(msgs[0]) for name, msgs in form.errors.items() if msgs})
            continue
        findings = services.save_step(s, report, step, to_values(step, form), subject=subject, actor=actor,
                                      today=today, ip=ip)
        errors.update({k: str(v) for k, v in findings.errors.items()})
        warnings.update({k: str(v) for k, v in findings.warnings.items()})
    if errors:
        raise FieldErrors(errors)
    return warnings
