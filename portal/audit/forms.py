"""The audit console's filter. A day that is no date or a range that ends before it starts is
an error beside the field, never an empty list that reads as "nothing happened"."""
from __future__ import annotations

from wtforms import Form, StringField

from portal.audit.export import range_problems
from portal.core.i18n import lazy_gettext as _l

MESSAGES = {
    "not_a_date": _l("Enter a real date, for example 2026-12-01."),
    "reversed": _l("The end date must be the same as or after the start date."),
}


class AuditFilterForm(Form):
    date_from = StringField(_l("From"), name="from", id="f-from")
    date_to = StringField(_l("Until"), name="to", id="f-to")

    def validate(self, extra_validators=None) -> bool:
        super().validate(extra_validators)
        fields = {"from": self.date_from, "to": self.date_to}
        problems = range_problems(*((fields[k].data or "").strip()[:100] for k in ("from", "to")))
        for name, problem in problems.items():
            fields[name].errors = [MESSAGES[problem]]
        return not problems
