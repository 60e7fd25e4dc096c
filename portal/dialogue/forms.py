"""The message form of a case's channel: it offers only the classifications the person may post
at (the policy's answer per level), a request's due date filled in from the setting, and, when a
send is refused, what was typed with the error beside its field."""
from __future__ import annotations

from datetime import date

from flask import g
from wtforms import BooleanField, FileField, StringField
from wtforms.validators import Optional

from portal.access.levels import LEVEL_LABELS, Level
from portal.access.policy import Subject
from portal.core.forms import BaseForm, Required, SelectField, TextAreaField
from portal.core.i18n import lazy_gettext as _l
from portal.core.service import ServiceError
from portal.core.templating import jdate
from portal.dialogue import services
from portal.dialogue.models import EXTERNAL
from portal.reports.models import Report

# A field's element id on the case page, which shows one form per channel (``body-external``).
_IDS = {"body": "body", "classification": "classification", "reply_to": "reply", "request": "request",
        "due_date": "due", "file": "file"}


class MessageForm(BaseForm):
    class Meta:
        # The body streams in and its CSRF token is checked where it is parsed
        # (portal.attachments.web.receive); this form only shows and keeps the values.
        csrf = False

    body = TextAreaField(_l("Message"), validators=[Required(_l("Write your message."))])
    classification = SelectField(_l("Classification"), validate_choice=False,
                                 validators=[Required(_l("Choose a classification from the list."))])
    reply_to = SelectField(_l("In reply to"), validate_choice=False, validators=[Optional()])
    request = BooleanField(_l("This is a request for information (the review clock stops until the company answers)"),
                           validators=[Optional()])
    due_date = StringField(_l("Response due date"))
    file = FileField(_l("Attach a file"))

    channel: str = EXTERNAL
    may_request: bool = False
    withheld: dict[str, list[str]]
    due_default: date | None = None
    rfi_days: int = 0

    def for_channel(self, channel: str) -> "MessageForm":
        self.channel = channel
        self.withheld = {}
        for name, f in self._fields.items():
            f.id = f"{_IDS.get(name, name)}-{channel}"
        return self

    def refuse(self, e: ServiceError) -> None:
        """Put a refusal beside the field it concerns (a refusal about no one field goes beside
        the message, or beside the request box when the message was a request)."""
        name = e.field if e.field in self._fields else ("request" if self.request.data else "body")
        self._fields[name].errors = [*self._fields[name].errors, e.message]
        self._errors = None


def for_case(report: Report, channels, *, subject: Subject, today: date, is_worker: bool,
             rfi_days: int) -> dict[str, MessageForm]:
    """A form per channel the person reads and may post in, with the classifications they may
    choose; the channel whose send was just refused gets its typed values and errors back."""
    pending: MessageForm | None = g.get("message_form")
    forms = {}
    for channel, messages in channels:
        levels, withheld = services.writable_levels(report, channel, subject=subject, today=today)
        if not levels:
            continue
        form = pending if pending is not None and pending.channel == channel else \
            MessageForm(formdata=None).for_channel(channel)
        # Labels as text, translated once: a select asks a lazy label for its text twice per option.
        form.classification.choices = [(v, str(LEVEL_LABELS[Level(v)])) for v in levels]
        if form.classification.data not in levels:
            form.classification.data = _default_level(report.classification, levels)
        form.reply_to.choices = [("", str(_l("Not a reply")))] + [
            (str(m.id), f"#{m.id} {m.author.name} {jdate(m.created_at)}") for m in messages]
        form.withheld = withheld
        form.may_request = is_worker and channel == EXTERNAL
        form.rfi_days = rfi_days
        form.due_default = services.default_due(today, rfi_days)
        if form.may_request and not form.due_date.data:
            form.due_date.data = form.due_default.isoformat()
        forms[channel] = form
    return forms


def _default_level(case_level: str, levels: list[str]) -> str:
    """The case's own level when the person may post at it, else the highest they may below it."""
    below = [v for v in levels if Level(v) <= Level(case_level)]
    return (below or levels)[-1]


def pending(formdata, channel: str) -> MessageForm:
    """The form as it was sent, kept for the page that shows a refused send."""
    form = MessageForm(formdata=formdata).for_channel(channel)
    g.message_form = form
    return form
