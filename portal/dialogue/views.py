from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from portal import db
from portal.auth import principal
from portal.access.policy import Action
from portal.attachments import services as attachments
from portal.attachments import web
from portal.core.i18n import gettext as _
from portal.encryption.opener import current_keyring
from portal.core.guard import by_id, can, current_subject, failed, guarded
from portal.core.service import Refused, ServiceError
from portal.core.templating import jdate
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, parse_id, settings
from portal.dialogue import forms, services
from portal.notifications import notify
from portal.reports.models import Report

bp = Blueprint("dialogue", __name__)


def _load_channel(report_id: int, channel: str):
    return services.channel_of(db.session(), by_id(Report, report_id), channel)


def _due(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ServiceError(_("Enter the due date as year-month-day, for example 2027-01-15."), field="due_date",
                           reason="bad_due_date") from None


def _reply_to(value: str) -> int | None:
    if not value.strip():
        return None
    if parse_id(value) is None:
        raise ServiceError(_("The message you are replying to does not exist in this thread."), field="body",
                           reason="bad_reply")
    return int(value)


def _thread_of(channel: services.Channel) -> str:
    return url_for("reports.show", report_id=channel.report.id, _anchor=f"channel-{channel.name}")


@bp.route("/reports/<int:report_id>/messages/<channel>", methods=["POST"])
@guarded(Action.MESSAGE_POST, load=_load_channel, event="message.post", back=_thread_of, body="stream")
def post(obj: services.Channel):
    """The policy has decided on the channel before the body streams in; the service decides
    again on the message's own classification once it is known. A send refused for what the
    form holds shows the case page again with the typed text and the error beside its field."""
    report, channel = obj.report, obj.name
    store = attachments.store_for(settings(), db.session)
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        f = received.form
        form = forms.pending(f, channel)
        form.request.data = as_request = f.get("request") == "1"
        try:
            msg = services.post(db.session(), report, channel=channel, body=f.get("body", ""),
                                classification=f.get("classification", ""), reply_to=_reply_to(f.get("reply_to", "")),
                                due=_due(f.get("due_date")) if as_request else None, request=as_request,
                                subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip(),
                                base_url=settings().base_url)
            att = None
            if received.sink is not None:
                att = attachments.store_upload(db.session(), current_keyring(), received.sink, report=report,
                                         filename=received.filename, classification=msg.classification,
                                         subject=current_subject(), actor=current_user, today=today_jst(),
                                         ip=client_ip(), message=msg)
        except Refused:
            raise
        except ServiceError as e:
            if not _form_shown(obj):
                raise
            received.abort()
            received = None
            failed(e, "message.post", obj)
            form.refuse(e)
            return _case_page(report), 400
    except BaseException:
        if received is not None:
            received.abort()
        raise
    if msg.due_asked_for is not None:
        flash(_("%(asked)s is a day the government is closed, so the response is due on the next open day, %(due)s.",
                asked=jdate(msg.due_asked_for), due=jdate(msg.due_date)), "warning")
    flash(_("Your message has been sent."), "success")
    if att is not None and att.scan_state != "clean":
        web.flash_verdict(att)
    return redirect(_thread_of(obj))


def _form_shown(channel: services.Channel) -> bool:
    """Whether the case page would show this channel's form again (the case is open and the
    person may read the case); otherwise a refusal goes back to the thread with its message."""
    return channel.report.status in services.OPEN_FOR_DIALOGUE and can(Action.REPORT_VIEW, channel.report)


def _case_page(report: Report):
    """The case page as its own route renders it (views import no other views module: the
    route is reached through the app); the refused form is in ``g`` (forms.pending)."""
    return current_app.view_functions["reports.show"].__wrapped__(obj=report)


@bp.route("/notifications")
@guarded(Action.ACCOUNT_SELF)
def notifications():
    rows = notify.read_all(db.session(), current_user.id)
    principal.notifications_read()
    return render_template("dialogue/notifications.html", rows=rows)
