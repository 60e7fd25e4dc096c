from __future__ import annotations

from datetime import date, datetime, timezone

from babel.numbers import format_decimal
from markupsafe import Markup

from portal.access.levels import Level, Role
from portal.access.policy import Action
from portal.core import labels
from portal.core.deadline_markup import draw_dated, draw_deadline
from portal.core.form_markup import error_mark, field
from portal.core.guard import can
from portal.core.i18n import gettext as _, language
from portal.core.timeutil import JST


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
# The eras a date in the portal can fall in (nothing it holds predates Heisei).
_ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"))


def _locale(locale: str | None) -> str:
    return locale or language()


def _day(d: date, locale: str) -> str:
    # Written out rather than through Babel: lists draw hundreds of dates, and the two forms
    # are fixed by DESIGN §10 (2026年12月1日 / 1 December 2026).
    if locale == "ja":
        return f"{d.year}年{d.month}月{d.day}日"
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def jdate(value: date | datetime | None, locale: str | None = None) -> str:
    """A date as people write it; a moment (datetime) as its JST date and time."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return jdatetime(value, locale)
    return _day(value, _locale(locale))


def jdatetime(value: datetime | None, locale: str | None = None, seconds: bool = False) -> str:
    """2026年12月1日 7:31 / 1 Dec 2026, 07:31 JST: always Japan time, whatever the server's zone.
    ``seconds`` for the audit console, where two events a second apart must be told apart."""
    if value is None:
        return ""
    if value.tzinfo is None:  # stored naive means UTC (portal.db.utcnow)
        value = value.replace(tzinfo=timezone.utc)
    t = value.astimezone(JST)
    sec = f":{t.second:02d}" if seconds else ""
    if _locale(locale) == "ja":
        return f"{t.year}年{t.month}月{t.day}日 {t.hour}:{t.minute:02d}{sec}"
    return f"{t.day} {_MONTHS[t.month - 1][:3]} {t.year}, {t.hour:02d}:{t.minute:02d}{sec} JST"


def official_date(value: date | datetime | None, locale: str | None = None) -> str:
    """For what the portal issues as an official document (a receipt, a notice): in Japanese
    the era year first, 令和8年12月1日（2026年12月1日）; in English the plain date."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(JST).date()
    if _locale(locale) != "ja":
        return _day(value, "en")
    for start, era in _ERAS:
        if value >= start:
            year = value.year - start.year + 1
            return f"{era}{'元' if year == 1 else year}年{value.month}月{value.day}日（{_day(value, 'ja')}）"
    return _day(value, "ja")


def paren(value) -> Markup:
    """A parenthetical after a name: full-width brackets in Japanese, "name (x)" in English."""
    if value is None or value == "":
        return Markup("")
    if language() == "ja":
        return Markup("（%s）") % value
    return Markup(" (%s)") % value


def yen(amount) -> str:
    return f"{int(amount):,}円" if language() == "ja" else f"¥{int(amount):,}"


def filesize(n: int | None, locale: str | None = None) -> str:
    """A size as people read it: 340 KB, 1.2 MB (1 KB = 1024 bytes, as the upload limit is
    stated); bytes only below 1 KB."""
    if n is None:
        return ""
    locale = locale or language()
    n = int(n)
    if n < 1024:
        return f"{format_decimal(n, locale=locale)} B"
    for unit, size in (("GB", 1024 ** 3), ("MB", 1024 ** 2)):
        if n >= size:
            return f"{format_decimal(round(n / size, 1), format='#,##0.#', locale=locale)} {unit}"
    return f"{format_decimal(round(n / 1024), locale=locale)} KB"


def _parse_date(v):
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        return None


def _inform_status_label(status: str) -> str:
    names = {"draft": _("Draft"), "pending_approval": _("Awaiting approval"), "rejected": _("Rejected"),
             "issued": _("Issued"), "revoked": _("Revoked")}
    return names.get(status, status)


def sep() -> Markup:
    """The separator between items of a line of metadata: 「・」 in Japanese, a middle dot in English."""
    return Markup(" ・ ") if language() == "ja" else Markup(" · ")


def _role_label(code):
    role = Role.parse(code)
    return role.label if role is not None else code


def _level_label(code):
    level = Level.parse(code)
    return level.label if level is not None else code


def init_app(app) -> None:
    """The filters and globals every template may use. Those that belong to a feature (a
    report's status labels, the notification badge) are added by that feature's own
    ``hooks.init_app``: this package sits below the features and imports none of them."""
    app.jinja_env.filters["jdate"] = jdate
    app.jinja_env.filters["yen"] = yen
    app.jinja_env.filters["filesize"] = filesize
    app.jinja_env.filters["role_label"] = _role_label
    app.jinja_env.filters["isodate"] = lambda v: jdate(_parse_date(v)) if v else ""
    app.jinja_env.filters["jdatetime"] = jdatetime
    app.jinja_env.filters["official_date"] = official_date
    app.jinja_env.filters["paren"] = paren
    app.jinja_env.filters["case_step"] = labels.case_step
    app.jinja_env.filters["inform_step"] = labels.inform_step
    app.jinja_env.filters["outcome_label"] = labels.outcome
    app.jinja_env.filters["action_label"] = labels.action
    app.jinja_env.filters["reason_label"] = labels.reason
    app.jinja_env.filters["checkpoint_reason"] = labels.checkpoint_reason
    app.jinja_env.filters["history_comment"] = lambda c, transition: labels.history_comment(transition, c, jdate)
    app.jinja_env.filters["level_label"] = _level_label
    app.jinja_env.globals["error_mark"] = error_mark
    app.jinja_env.globals["field"] = field
    app.jinja_env.globals["draw_deadline"] = draw_deadline
    app.jinja_env.globals["draw_dated"] = draw_dated

    @app.context_processor
    def _globals():
        return {"can": can, "inform_status_label": _inform_status_label, "Action": Action,
                "settings": app.config["SETTINGS"], "current_locale": language(), "sep": sep()}
