from __future__ import annotations

from wtforms import IntegerField, StringField
from wtforms.validators import Length, NumberRange, Optional

from portal.access.forms import CheckboxesField

from portal.access.levels import ROLE_LABELS, Role
from portal.core.forms import BaseForm, Email, Required, SelectField, TextAreaField, normalise_email_input, strip
from portal.core.i18n import lazy_gettext as _l


class InviteForm(BaseForm):
    name = StringField(_l("Name"), filters=[strip], validators=[Required(_l("Enter the person's name.")), Length(max=200)],
                       description=_l("As it should appear in the portal, for example Taro Yamada."))
    email = StringField(_l("E-mail address"), filters=[normalise_email_input],
                        validators=[Required(_l("Enter the person's e-mail address.")), Email(), Length(max=254)],
                        description=_l("The invitation link is sent here, for example hanako.suzuki@example.co.jp"))
    role = SelectField(_l("Role"), choices=[(Role.FILER.value, ROLE_LABELS[Role.FILER]),
                                             (Role.ORG_ADMIN.value, ROLE_LABELS[Role.ORG_ADMIN])],
                       validators=[Required(_l("Choose a role."))],
                       validate_choice=False,  # the service refuses other roles (and it is audited)
                       description=_l("Filers draft and submit reports; organisation administrators also manage members."))


class ApiTokenForm(BaseForm):
    """An API token for one of the organisation's members (portal.auth.tokens)."""
    name = StringField(_l("Name of the token"), filters=[strip],
                       validators=[Required(_l("Enter a name for the token, for example the system that will use it.")),
                                   Length(max=100)],
                       description=_l("For example, export-control system (production)."))
    user_id = SelectField(_l("Acts as"), choices=[], validate_choice=False,  # the service checks the member
                          validators=[Required(_l("Choose the member the token acts as."))],
                          description=_l("The token can do what this member may do, within its scopes."))
    scopes = CheckboxesField(_l("Scopes"), choices=[], validate_choice=False,
                             validators=[Required(_l("Choose at least one scope from the list."))])
    days = IntegerField(_l("Valid for (days)"), default=90,
                        validators=[Required(_l("Enter a validity from 1 to 366 days.")),
                                    NumberRange(min=1, max=366, message=_l("Enter a validity from 1 to 366 days."))])
    source_addresses = TextAreaField(_l("Source addresses (optional)"), filters=[strip],
                                     validators=[Optional(), Length(max=2000)],
                                     description=_l("IP addresses or networks the token may be used from, separated by "
                                                    "spaces, for example 203.0.113.0/24. Empty: any address."))
