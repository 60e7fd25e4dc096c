from __future__ import annotations

from wtforms import IntegerField
from wtforms.validators import Length

from portal.core.forms import BaseForm, Required, TextAreaField, strip
from portal.core.i18n import lazy_gettext as _l


class AssignForm(BaseForm):
    assignee = IntegerField(_l("Assign to"), validators=[Required(_l("Choose a reviewer."))])


class ReturnForm(BaseForm):
    comment = TextAreaField(_l("What must be corrected"), filters=[strip],
                            validators=[Required(_l("Enter what the company must correct.")), Length(max=10000)],
                            description=_l("The company sees this text, for example: Please state the counterparty's address."))


class CloseForm(BaseForm):
    summary = TextAreaField(_l("Summary for the company"), filters=[strip],
                            validators=[Required(_l("Enter a summary for the company.")), Length(max=10000)],
                            description=_l("The company sees this summary when the case is closed without an inform."))
