from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.validators import Length

from portal.access.levels import ROLE_LABELS, Role
from portal.core.forms import BaseForm, Email, Required, normalise_email_input, strip


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
