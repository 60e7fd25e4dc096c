"""What the dialogue hands to the packages below it when the app starts.

The report lists (``portal.reports.listing``) and the principal read with every request
(``portal.auth.principal``) show unread counts, and the page layout names notifications; all of
that is the dialogue's, and the dialogue builds on those packages, so they may not import it
(the layers contract in pyproject.toml). ``create_app`` calls ``init_app`` instead.
"""
from __future__ import annotations

from flask import Flask
from flask_login import current_user

from portal import db
from portal.auth import principal
from portal.core.i18n import language
from portal.dialogue import services
from portal.notifications import notify
from portal.dialogue.models import EXTERNAL
from portal.reports import listing


def unread_notifications() -> int:
    """The badge in the layout: the count read with the principal, or counted afresh after
    a sign-in within the request."""
    if not current_user.is_authenticated:
        return 0
    p = principal.of(current_user._get_current_object())
    return p.unread_notifications if p is not None else notify.unread_count(db.session(), current_user.id)


def notification_label(kind: str) -> str:
    ja, en = notify.SUBJECTS.get(kind, (kind, kind))
    return ja if language() == "ja" else en


def init_app(app: Flask) -> None:
    listing.count_unread_with(services.unread_column, company_channels=(EXTERNAL,))
    principal.count_notifications_with(notify.unread_column)
    app.add_template_global(unread_notifications)
    app.add_template_global(notification_label)
