from __future__ import annotations

from decimal import Decimal

from wtforms import BooleanField, DateField, RadioField, StringField
from wtforms.validators import Length, NumberRange, Optional

from portal.access.forms import CheckboxesField
from portal.access.levels import LEVEL_LABELS, Level
from portal.core.forms import (AmountField, BaseForm, DateWindow, Email, PercentField, Required, SelectField,
                               TextAreaField, normalise_code, normalise_email_input, strip)
from portal.core.i18n import lazy_gettext as _l
from portal.reports import content as C


class ContactForm(BaseForm):
    contact_name = StringField(_l("Contact person"), filters=[strip],
                               validators=[Required(_l("Enter the name of the contact person.")), Length(max=200)],
                               description=_l("The person METI should contact about this report, for example Taro Yamada."))
    contact_email = StringField(_l("Contact e-mail address"), filters=[normalise_email_input],
                                validators=[Required(_l("Enter the contact person's e-mail address.")), Email(), Length(max=254)],
                                description=_l("For example, taro.yamada@example.co.jp"))
    contact_phone = StringField(_l("Contact telephone number"), filters=[normalise_code],
                                validators=[Optional(), Length(max=30)],
                                description=_l("For example, 03-1234-5678."))


class TechnologyForm(BaseForm):
    technology = SelectField(_l("Designated technology"), validators=[Required(_l("Choose the designated technology."))],
                             validate_choice=False,
                             description=_l("The technology in the list of technologies subject to prior reporting."))
    description = TextAreaField(_l("Description of the exact technology"), filters=[strip],
                                validators=[Required(_l("Describe the exact technology to be transferred.")), Length(max=10000)],
                                description=_l("What will be transferred: for example, the sintering conditions and the slurry formulation for 0201-size MLCC."))
    transfer_form = RadioField(_l("Form of transfer"), choices=list(C.TRANSFER_FORMS.items()), validate_choice=False,
                               validators=[Required(_l("Choose the form of transfer."))])
    classification = RadioField(_l("Classification of this report"), validate_choice=False,
                                choices=[(l, LEVEL_LABELS[Level(l)]) for l in C.FILER_CLASSIFICATIONS],
                                validators=[Required(_l("Choose a classification."))],
                                description=_l("How sensitive the content is. Confidential requires a facility clearance to read."))


class CounterpartyForm(BaseForm):
    counterparty_name = StringField(_l("Counterparty name"), filters=[strip],
                                    validators=[Required(_l("Enter the counterparty's name.")), Length(max=200)],
                                    description=_l("The registered name, for example ABC Electronics Co., Ltd."))
    counterparty_country = SelectField(_l("Counterparty country"), validate_choice=False,
                                       validators=[Required(_l("Choose the counterparty's country."))])
    counterparty_address = TextAreaField(_l("Counterparty address"), filters=[strip], validators=[Optional(), Length(max=400)])
    counterparty_relation = RadioField(_l("Relation to your company"), choices=list(C.RELATIONS.items()),
                                       validate_choice=False, validators=[Required(_l("Choose the relation."))])
    shareholding = PercentField(_l("Your shareholding (%)"), places=2,
                                validators=[Optional(), NumberRange(min=0, max=100, message=_l("Enter a shareholding from 0 to 100."))],
                                description=_l("For a subsidiary or joint venture only, for example 51."))


class TransferForm(BaseForm):
    destination_country = SelectField(_l("Destination country"), validate_choice=False,
                                      validators=[Required(_l("Choose the destination country."))],
                                      description=_l("Where the technology will be used."))
    contract_date = DateField(_l("Planned contract date"),
                              validators=[Required(_l("Enter the planned contract date.")), DateWindow(*C.DATE_WINDOW_YEARS)],
                              description=_l("For example, 2027-01-15."))
    transfer_date = DateField(_l("Planned transfer date"),
                              validators=[Required(_l("Enter the planned transfer date.")), DateWindow(*C.DATE_WINDOW_YEARS)],
                              description=_l("In principle at least 30 days after you report. For example, 2027-03-01."))
    contract_value = AmountField(_l("Contract value"),
                                  validators=[Required(_l("Enter the contract value.")),
                                              NumberRange(min=0, max=10**15, message=_l("Enter a value of 0 or more."))],
                                  description=_l("A whole number; commas are accepted, for example 120,000,000."))
    currency = SelectField(_l("Currency"), validate_choice=False, validators=[Required(_l("Choose the currency."))])
    group_a_confirmed = BooleanField(_l("I confirm that I want to report this transfer although the destination is a Group A country."),
                                     validators=[Optional()])


class MeasuresForm(BaseForm):
    measures = CheckboxesField(_l("Management measures planned"), choices=list(C.MEASURES.items()),
                               validate_choice=False, validators=[Required(_l("Tick at least one management measure."))],
                               description=_l("Tick every measure you will take to prevent leakage of the technology."))


class SubmitForm(BaseForm):
    attest = BooleanField(_l("I declare that the information in this report is true and complete. I understand that failing to report or reporting falsely is punishable under the Foreign Exchange and Foreign Trade Act."),
                          validators=[Required(_l("Confirm that the information is true before you submit."))])


class WithdrawForm(BaseForm):
    comment = TextAreaField(_l("Reason for withdrawal"), filters=[strip],
                            validators=[Required(_l("Enter the reason for withdrawing the report.")), Length(max=10000)],
                            description=_l("For example, the transaction was cancelled."))


class TransitionForm(BaseForm):
    comment = TextAreaField(_l("Comment"), filters=[strip], validators=[Optional(), Length(max=10000)],
                            description=_l("Shown in the case history."))


STEP_FORMS = {
    "contact": ContactForm,
    "technology": TechnologyForm,
    "counterparty": CounterpartyForm,
    "transfer": TransferForm,
    "measures": MeasuresForm,
}


def to_values(step: str, form) -> dict:
    """The form's data as the JSON-able values the draft stores."""
    out = {}
    for name in C.STEP_FIELDS[step]:
        if not hasattr(form, name):
            continue
        v = getattr(form, name).data
        if isinstance(v, Decimal):
            v = float(v)
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[name] = v
    return out
