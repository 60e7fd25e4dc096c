"""Japanese by default, English by choice (remembered per user, or in the session before sign-in)."""
from __future__ import annotations

from flask import has_request_context, session
from flask_babel import Babel
from flask_login import current_user

LANGUAGES = ("ja", "en")

babel = Babel()


def select_locale() -> str:
    if not has_request_context():
        return "ja"
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "ja"


def init_app(app) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: "Asia/Tokyo")
