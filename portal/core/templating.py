from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel.dates import format_date as babel_format_date, format_datetime as babel_format_datetime
from flask_babel import get_locale

from portal.access.levels import Level, Role
from portal.access.policy import Action
from portal.core.guard import can
from portal.core.timeutil import JST


@lru_cache(maxsize=4096)
def _long_date(d: date, locale: str) -> str:
    # Lists repeat the same few hundred dates: Babel formats each once per process.
    return babel_format_date(d, "long", locale=locale)


def jdate(value: date | datetime | None, locale: str | None = None) -> str:
    if value is None:
        return ""
    locale = locale or str(get_locale())
    if isinstance(value, datetime):
        if locale != "ja":
            return babel_format_datetime(value, "long", tzinfo=JST, locale=locale)
        local = value.astimezone(JST)
        return f"{_long_date(local.date(), 'ja')} {local.hour}:{local.minute:02d}"  # yyyy年M月d日 H:mm
    return _long_date(value, locale)


def yen(amount) -> str:
    return f"{int(amount):,}円" if str(get_locale()) == "ja" else f"¥{int(amount):,}"


def _parse_date(v):
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        return None


def _inform_status_label(status: str) -> str:
    from flask_babel import gettext as _

    labels = {"draft": _("Draft"), "pending_approval": _("Awaiting approval"), "rejected": _("Rejected"),
              "issued": _("Issued"), "revoked": _("Revoked")}
    return labels.get(status, status)


def init_app(app) -> None:
    """The filters and globals every template may use. Those that belong to a feature (a
    report's status labels, the notification badge) are added by that feature's own
    ``hooks.init_app``: this package sits below the features and imports none of them."""
    app.jinja_env.filters["jdate"] = jdate
    app.jinja_env.filters["yen"] = yen
    app.jinja_env.filters["role_label"] = lambda r: (Role.parse(r).label if Role.parse(r) else r)
    app.jinja_env.filters["isodate"] = lambda v: jdate(_parse_date(v)) if v else ""
    app.jinja_env.filters["level_label"] = lambda l: (Level.parse(l).label if Level.parse(l) else l)

    @app.context_processor
    def _globals():
        return {"can": can, "inform_status_label": _inform_status_label, "Action": Action,
                "settings": app.config["SETTINGS"], "current_locale": str(get_locale())}
