"""A case's next deadline as every page draws it (``portal.reports.deadlines.Shown``).

Python rather than a Jinja macro: a list draws one per row, and two macro calls per row cost a
list page more than its query. Overdue is said in words as well as drawn, never by colour alone.
"""
from __future__ import annotations

from markupsafe import Markup, escape

from portal.core.i18n import gettext


def draw_dated(text, overdue, kind="", overdue_text=None) -> Markup:
    """A date with its kind (``data-kind``) and, when it has passed, the word "Overdue" (a list
    passes it translated once per page as ``overdue_text``)."""
    parts = ['<span class="deadline deadline--overdue"' if overdue else '<span class="deadline"',
             ' data-test="deadline"']
    if kind:
        parts.append(f' data-kind="{escape(kind)}"')
    parts += [">", escape(text)]
    if overdue:
        parts += [' <strong class="tag tag--overdue">', escape(overdue_text or gettext("Overdue")), "</strong>"]
    parts.append("</span>")
    return Markup("".join(parts))


def draw_deadline(d, overdue_text=None) -> Markup:
    """``d`` (a ``Shown``, or None for no deadline) and, when the planned transfer date has
    passed under another deadline, its note."""
    if not d:
        return Markup("")
    drawn = draw_dated(d.text, d.overdue, d.kind, overdue_text)
    if d.note:
        return Markup(f'{drawn} <strong class="tag tag--overdue" data-test="transfer-passed">{escape(d.note)}</strong>')
    return drawn
