"""The portal's Flask application factory."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from portal.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    from portal.core import localised_templates

    localised_templates.init_app(app)  # before anything makes app.jinja_env
    secret = settings.secret_key
    if secret is None:
        if settings.env == "production":
            settings.require_secret()
        # Development and tests only: a random key per process, never a fixed string.
        import secrets

        secret = secrets.token_urlsafe(48)
    app.config.from_mapping(
        SETTINGS=settings,
        SECRET_KEY=secret,
        DATABASE_URL=settings.database_url,
        TESTING=settings.env == "test",
        SESSION_IDLE_MINUTES=settings.session_idle_minutes,
        SESSION_ABSOLUTE_HOURS=settings.session_absolute_hours,
        SESSION_COOKIE_SECURE=settings.https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_FORM_MEMORY_SIZE=settings.max_form_bytes,
        MAX_CONTENT_LENGTH=settings.max_form_bytes,
        WTF_CSRF_TIME_LIMIT=None,
        # The request path (portal.core.guard) checks the token itself, after the policy has
        # decided: no byte of a body is read for a request the policy refuses.
        WTF_CSRF_CHECK_DEFAULT=False,  # bound to the session, which has its own timeouts
        WTF_CSRF_SSL_STRICT=settings.https,
        BABEL_DEFAULT_LOCALE="ja",
        BABEL_DEFAULT_TIMEZONE="Asia/Tokyo",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        PREFERRED_URL_SCHEME="https" if settings.https else "http",
    )
    if settings.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    from portal import db

    db.init_app(app)

    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for

    if settings.keyring_path.exists():
        sealed.configure(keyring_for(settings.keyring_path), settings.database_url)
    from portal.encryption import leases

    leases.configure(settings.key_lease_hours)

    from portal.core import i18n, security

    i18n.init_app(app)
    security.init_app(app)

    from portal.auth.sessions import DatabaseSessionInterface

    app.session_interface = DatabaseSessionInterface()

    from portal.auth import login

    login.init_app(app)

    from portal.core.web import BoundedInt

    # One converter for every id in a path: a number the database cannot hold names nothing
    # (404 from routing, before any view or query), on SQLite and PostgreSQL alike.
    app.url_map.converters["int"] = BoundedInt

    from portal.core.views import bp as core_bp
    from portal.auth.views import bp as auth_bp
    from portal.orgs.views import bp as orgs_bp
    from portal.admin.views import bp as admin_bp
    from portal.access.views import bp as access_bp
    from portal.audit.views import bp as audit_bp
    from portal.reports.views import bp as reports_bp
    from portal.catalogue.views import bp as catalogue_bp
    from portal.attachments.views import bp as attachments_bp
    from portal.dialogue.views import bp as dialogue_bp
    from portal.review.views import bp as review_bp
    from portal.informs.views import bp as informs_bp
    from portal.api import views as api_views

    for bp in (core_bp, auth_bp, orgs_bp, admin_bp, access_bp, audit_bp, reports_bp, catalogue_bp, attachments_bp,
               dialogue_bp, review_bp, informs_bp, api_views.bp):
        app.register_blueprint(bp)
    api_views.init_app(app)  # /api/v1: rate limits, and problem documents for its errors

    from portal.core import errors, templating
    from portal.dialogue import hooks as dialogue_hooks
    from portal.reports import hooks as reports_hooks

    errors.init_app(app)
    templating.init_app(app)
    # The features hand the lower packages what those show but may not import (pyproject.toml).
    reports_hooks.init_app(app)
    dialogue_hooks.init_app(app)
    from portal import worklists

    worklists.init_app(app)  # the home page's work lists and the queue's 決裁待ち mark

    from portal import observability

    # Last: its middleware wraps all of the above, so every answer is timed, logged and counted.
    observability.init_app(app)

    from portal.cli import register

    register(app)
    return app
