from __future__ import annotations

from wtforms import PasswordField, StringField
from wtforms.validators import Length

from portal.auth.passwords import MAX_LENGTH
from portal.core.forms import BaseForm, Email, Required, normalise_code, normalise_email_input
from portal.core.i18n import lazy_gettext as _l


class LoginForm(BaseForm):
    email = StringField(_l("E-mail address"), filters=[normalise_email_input],
                        validators=[Required(_l("Enter your e-mail address.")), Email(), Length(max=254)],
                        description=_l("For example, taro.yamada@example.co.jp"))
    password = PasswordField(_l("Password"), validators=[Required(_l("Enter your password.")),
                                                         Length(max=MAX_LENGTH, message=_l("Enter a password of at most %(max)d characters."))])


class CodeForm(BaseForm):
    code = StringField(_l("Verification code"), filters=[normalise_code],
                       validators=[Required(_l("Enter the 6-digit code from your authenticator app.")), Length(max=32)],
                       description=_l("The 6-digit code shown in your authenticator app, for example 123456."))


class RecoveryForm(BaseForm):
    code = StringField(_l("Recovery code"), filters=[normalise_code],
                       validators=[Required(_l("Enter one of your recovery codes.")), Length(max=32)],
                       description=_l("One of the codes you saved when you set up two-factor authentication, for example abcd-efgh-jkmn."))


class PasswordChangeForm(BaseForm):
    current_password = PasswordField(_l("Current password"), validators=[Required(_l("Enter your current password.")), Length(max=MAX_LENGTH)])
    new_password = PasswordField(_l("New password"), validators=[Required(_l("Enter a new password."))],
                                 description=_l("At least 12 characters. A long phrase you can remember is best; no special characters are required."))
    confirm_password = PasswordField(_l("Confirm new password"), validators=[Required(_l("Enter the new password again."))])


class SetPasswordForm(BaseForm):
    new_password = PasswordField(_l("Password"), validators=[Required(_l("Enter a password."))],
                                 description=_l("At least 12 characters. A long phrase you can remember is best; no special characters are required."))
    confirm_password = PasswordField(_l("Confirm password"), validators=[Required(_l("Enter the password again."))])


class EmptyForm(BaseForm):
    """A form with only the CSRF token, for POST-only buttons (sign out, disable…)."""
