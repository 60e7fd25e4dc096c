"""The filing flow as the filer walks it: the content steps, then the files, then the check
page. One list, so the step indicator, "continue" and the check page's 変更 links agree."""
from __future__ import annotations

from dataclasses import dataclass

from flask import url_for

from portal.core.i18n import lazy_gettext as _l
from portal.reports import content as C

ATTACHMENTS = "attachments"
FLOW = (*C.STEPS, ATTACHMENTS)
ATTACHMENTS_TITLE = _l("Attachments")


@dataclass(frozen=True, slots=True)
class Stop:
    key: str
    title: str
    href: str


def step_url(report_id: int, key: str, **args) -> str:
    if key == ATTACHMENTS:
        return url_for("attachments.index", report_id=report_id, **args)
    return url_for("reports.edit", report_id=report_id, step=key, **args)


def stops(report_id: int) -> list[Stop]:
    return [Stop(k, str(ATTACHMENTS_TITLE if k == ATTACHMENTS else C.STEP_TITLES[k]), step_url(report_id, k))
            for k in FLOW]


def after(key: str) -> str | None:
    """The stop after ``key`` (None: the check page comes next)."""
    i = FLOW.index(key) + 1
    return FLOW[i] if i < len(FLOW) else None


def resume_url(report_id: int, data: dict) -> str:
    """Where 「入力を続ける」 reopens a draft: the first step still missing something; a draft
    with every step done goes to the check page, where each answer has its 変更 link."""
    missing = C.missing_steps(data)
    if missing:
        return step_url(report_id, missing[0])
    return url_for("reports.check", report_id=report_id)
