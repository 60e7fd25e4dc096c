from __future__ import annotations

from wtforms import DateField, SelectMultipleField, widgets
from wtforms.validators import Length, Optional

from portal.access.levels import LEVEL_LABELS, Level
from portal.core.forms import BaseForm, DateWindow, Required, SelectField, TextAreaField, strip
from portal.core.i18n import lazy_gettext as _l


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class GrantForm(BaseForm):
    level = SelectField(_l("Clearance level"), choices=[(l.value, LEVEL_LABELS[l]) for l in Level],
                        validate_choice=False,  # the service refuses unknown levels (and audits it)
                        validators=[Required(_l("Choose a clearance level."))],
                        description=_l("The highest classification the person may read."))
    compartments = CheckboxesField(_l("Compartments (designated technologies)"), choices=[], validate_choice=False,
                                   description=_l("The person sees only cases of the technologies ticked here."))
    expires_on = DateField(_l("Expiry date"), validators=[Optional(), DateWindow(10, 10)],
                           format="%Y-%m-%d",
                           description=_l("Leave empty for the statutory default of 10 years. For example 2036-11-21."))
    reason = TextAreaField(_l("Reason"), filters=[strip],
                           validators=[Required(_l("Enter the reason for this grant.")), Length(max=1000)],
                           description=_l("Recorded in the history and the audit trail, for example: Granted on the result of the suitability assessment."))


class RevokeForm(BaseForm):
    reason = TextAreaField(_l("Reason for revocation"), filters=[strip],
                           validators=[Required(_l("Enter the reason for the revocation.")), Length(max=1000)],
                           description=_l("Recorded in the history and the audit trail."))


class FacilityForm(BaseForm):
    valid_from = DateField(_l("Valid from"), validators=[Optional(), DateWindow(10, 20)], format="%Y-%m-%d",
                           description=_l("For example 2026-04-01. Leave both dates empty to remove the facility clearance."))
    valid_until = DateField(_l("Valid until"), validators=[Optional(), DateWindow(10, 20)], format="%Y-%m-%d",
                            description=_l("For example 2031-03-31."))
