from __future__ import annotations

from wtforms import StringField
from wtforms.validators import Length

from portal.access.levels import ROLE_LABELS, Role
from portal.core.forms import (BaseForm, Email, Required, SelectField, TextAreaField, normalise_code,
                               normalise_email_input, strip)
from portal.core.i18n import lazy_gettext as _l


def role_choices():
    return [(r.value, ROLE_LABELS[r]) for r in Role]


class AdminInviteForm(BaseForm):
    organisation_id = SelectField(_l("Organisation"), coerce=int, validators=[Required(_l("Choose an organisation."))],
                                  description=_l("The organisation the person belongs to."))
    name = StringField(_l("Name"), filters=[strip], validators=[Required(_l("Enter the person's name.")), Length(max=200)],
                       description=_l("As it should appear in the portal, for example Taro Yamada."))
    email = StringField(_l("E-mail address"), filters=[normalise_email_input],
                        validators=[Required(_l("Enter the person's e-mail address.")), Email(), Length(max=254)],
                        description=_l("The invitation link is sent here, for example taro.yamada@meti.go.jp"))
    role = SelectField(_l("Role"), choices=role_choices, validators=[Required(_l("Choose a role."))],
                       validate_choice=False,  # the service refuses unknown roles (and it is audited)
                       description=_l("Government roles must use two-factor authentication."))


class RoleForm(BaseForm):
    role = SelectField(_l("Role"), choices=role_choices, validators=[Required(_l("Choose a role."))],
                       validate_choice=False,  # the service refuses unknown roles (and it is audited)
                       description=_l("Changing the role signs the person out everywhere."))


class OrganisationForm(BaseForm):
    name = StringField(_l("Organisation name"), filters=[strip],
                       validators=[Required(_l("Enter the organisation's name.")), Length(max=200)],
                       description=_l("The registered name, for example Sample Denshi K.K."))
    corporate_number = StringField(_l("Corporate number"), filters=[normalise_code],
                                   validators=[Required(_l("Enter the 13-digit corporate number.")), Length(max=40)],
                                   description=_l("13 digits, for example 1180301018771. Full-width digits and hyphens are accepted."))
    address = TextAreaField(_l("Address"), filters=[strip], validators=[Length(max=400)],
                            description=_l("The registered head-office address."))
