from __future__ import annotations

from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import Length, Optional

from portal.access.levels import LEVEL_LABELS, Level
from portal.core.forms import BaseForm, Required, SelectField, TextAreaField, strip
from portal.core.i18n import lazy_gettext as _l
from portal.informs.services import DEFAULT_LEGAL_BASIS


class InformForm(BaseForm):
    legal_basis = StringField(_l("Legal basis"), filters=[strip], default=DEFAULT_LEGAL_BASIS,
                              validators=[Required(_l("Enter the legal basis.")), Length(max=500)])
    reasons = TextAreaField(_l("Reasons (the company reads these)"), filters=[strip],
                            validators=[Required(_l("Enter the reasons the company will read.")), Length(max=20000)])
    conditions = TextAreaField(_l("Conditions"), filters=[strip], validators=[Optional(), Length(max=20000)],
                               description=_l("Conditions the company must observe, if any."))
    internal_rationale = TextAreaField(_l("Internal rationale (METI only)"), filters=[strip],
                                       validators=[Required(_l("Enter the internal rationale.")), Length(max=20000)],
                                       description=_l("Never shown to the company."))
    rationale_classification = SelectField(_l("Classification of the internal rationale"), validate_choice=False,
                                           choices=[(l.value, LEVEL_LABELS[l]) for l in Level],
                                           validators=[Required(_l("Choose a classification."))])


class DecisionForm(BaseForm):
    comment = TextAreaField(_l("Comment"), filters=[strip], validators=[Optional(), Length(max=20000)])


class RejectForm(BaseForm):
    # Its own id: the case page also holds the review panel's comment fields.
    comment = TextAreaField(_l("Reason for rejecting the draft"), id="reject-comment", filters=[strip],
                            validators=[Optional(), Length(max=20000)])


class ConfirmForm(BaseForm):
    """The confirmation page's form: the only one that carries the digest approval requires."""
    comment = TextAreaField(_l("Comment"), filters=[strip], validators=[Optional(), Length(max=20000)])
    confirmed = HiddenField(validators=[Optional(), Length(max=64)])


class AckForm(BaseForm):
    confirm = BooleanField(_l("I confirm that we have received this inform."),
                           validators=[Required(_l("Confirm that you have received the notice."))])


class LicenceForm(BaseForm):
    licence_application_ref = StringField(_l("Licence application reference"), filters=[strip],
                                          validators=[Required(_l("Enter the reference of your licence application.")),
                                                      Length(max=100)],
                                          description=_l("The number of your application under the Act, for example 2027-経-000123."))


class RevokeForm(BaseForm):
    reason = TextAreaField(_l("Reason for revocation"), filters=[strip],
                           validators=[Required(_l("Enter the reason for the revocation.")), Length(max=20000)])
