"""The ``portal`` command. Every command runs inside an application context and calls the
same services as the web; commands that act for a person record it in the audit trail."""
from __future__ import annotations

import os
import sys
from datetime import date

import click

from portal.config import ConfigError, Settings


def _app():
    from portal import create_app

    try:
        settings = Settings.from_env()
        if settings.secret_key is None and settings.env == "production":
            # Commands such as `init` create the secret; let them run with a throwaway one.
            settings = Settings.from_env(env="development")
        return create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class AppContextGroup(click.Group):
    pass


@click.group(cls=AppContextGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Technology-transfer prior-notification portal (技術移転事前報告ポータル)."""
    if ctx.invoked_subcommand is None or "--help" in sys.argv or "-h" in sys.argv:
        return
    app = _app()
    ctx.obj = app
    ctx.with_resource(app.app_context())


def register(app) -> None:
    """Expose the same commands under ``flask`` too (not needed, kept small)."""


@main.command()
def init() -> None:
    """Create instance/ keys (0600) if absent and migrate the database to head."""
    from flask import current_app

    from portal.keys import ensure_instance
    from portal.migrate import upgrade

    settings: Settings = current_app.config["SETTINGS"]
    for path in ensure_instance(settings):
        click.echo(f"created {path}")
    upgrade(settings.database_url)
    click.echo(f"database at head: {_redact(settings.database_url)}")
    from portal import db, sealed
    from portal.attachments.keys import keyring_for

    keyring = keyring_for(settings.keyring_path)
    sealed.configure(keyring, settings.database_url)
    with db.engine().begin() as conn:
        if sealed.ensure_field_key(conn, keyring):
            click.echo("created the field-encryption data key")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.command()
def demo() -> None:
    """Seed demo organisations and one user per role (once); print the accounts."""
    from flask import current_app

    from portal import db
    from portal.demo import DemoRefused, format_accounts, seed

    try:
        accounts = seed(db.session())
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()
    if not accounts:
        saved = current_app.config["SETTINGS"].instance_path / "demo-accounts.txt"
        click.echo("demo data already present.")
        if saved.exists():
            click.echo(saved.read_text(), nl=False)
        return
    click.echo(format_accounts(accounts), nl=False)


@main.group()
def users() -> None:
    """Create and disable accounts."""


@users.command("create")
@click.option("--email", required=True, help="Sign-in e-mail address.")
@click.option("--name", required=True, help="Display name.")
@click.option("--role", required=True, help="filer, org_admin, reviewer, approver, auditor, security_officer or admin.")
@click.option("--organisation", "org_number", required=True, help="The organisation's 法人番号 (13 digits).")
@click.option("--level", default=None, help="Clearance level: public, restricted, confidential or csi.")
@click.option("--compartment", "compartments", multiple=True, help="A designated-technology code (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def users_create(email, name, role, org_number, level, compartments, password_stdin) -> None:
    """Create an account (and its initial clearance when --level is given)."""
    from sqlalchemy import select

    from portal import db
    from portal.access import services as clearances
    from portal.admin.services import create_user
    from portal.core.service import ServiceError
    from portal.core.timeutil import today_jst
    from portal.orgs import corporate_number
    from portal.orgs.models import Organisation
    from flask import current_app

    from portal.access.levels import Level, Role

    if Role.parse(role) is None:
        raise click.BadParameter(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
                                 param_hint="--role")
    if level is not None and Level.parse(level) is None:
        raise click.BadParameter(f"unknown level {level!r}; choose one of {', '.join(l.value for l in Level)}",
                                 param_hint="--level")
    s = db.session()
    org = s.execute(select(Organisation).where(Organisation.corporate_number == corporate_number.clean(org_number))).scalar_one_or_none()
    if org is None:
        raise click.BadParameter(f"no organisation with 法人番号 {org_number}", param_hint="--organisation")
    # Never hold the database (on SQLite every transaction takes the write lock) while waiting
    # for a person to type: end the lookup's transaction before reading the password.
    s.rollback()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(s, current_app.config["SETTINGS"], email=email, name=name, role=role, org=org,
                           password=password, actor=None)
        if level:
            clearances.grant(s, target=user, level=level, compartments=list(compartments), expires_on=None,
                             reason="initial clearance set with `portal users create`", actor=None, today=today_jst())
    except ServiceError as exc:
        s.rollback()
        raise click.ClickException(exc.message) from None
    db.commit()
    click.echo(f"created user {user.id} <{user.email}> role={user.role}")


@users.command("disable")
@click.argument("email")
def users_disable(email) -> None:
    """Disable an account and end its sessions."""
    from portal import db
    from portal.auth.services import find_user
    from portal.orgs.services import set_active

    s = db.session()
    user = find_user(s, email)
    if user is None:
        raise click.ClickException(f"no account with e-mail {email}")
    set_active(s, target=user, active=False, actor=None, ip=None)
    db.commit()
    click.echo(f"disabled {user.email}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int, help="Default: $PORT or 5000.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve(host, port, workers) -> None:
    """Serve with gunicorn."""
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
                               "--access-logfile", "-", "wsgi:app"])


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit non-zero naming the first broken sequence number."""
    import time

    from portal import db
    from portal.audit.verify import verify_chain

    t0 = time.perf_counter()
    with db.engine().connect() as conn:
        result = verify_chain(conn)
    dt = time.perf_counter() - t0
    if not result.ok:
        click.echo(f"BROKEN at sequence {result.first_bad_seq}: {result.problem}", err=True)
        sys.exit(1)
    rate = result.count / dt if dt > 0 else 0
    click.echo(f"ok: {result.count} events, head {result.head_seq} {result.head_hash} ({rate:,.0f} events/s)")


@main.group()
def mail() -> None:
    """The outbox."""


@mail.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def mail_list(limit) -> None:
    """Show the newest messages in the outbox (for offline installations)."""
    from portal import db
    from portal.mail import outbox

    for m in outbox.recent(db.session(), limit=limit):
        state = "sent" if m.sent_at else "queued"
        click.echo(f"--- #{m.id} {state} {m.created_at:%Y-%m-%d %H:%M}Z to {m.to_addr}\nSubject: {m.subject}\n\n{m.body}")


@mail.command("send")
def mail_send() -> None:
    """Deliver queued mail over SMTP (PORTAL_SMTP_HOST)."""
    from flask import current_app

    from portal import db
    from portal.mail import outbox

    settings = current_app.config["SETTINGS"]
    if not settings.smtp_configured:
        raise click.ClickException("PORTAL_SMTP_HOST is not set; mail stays in the outbox (portal mail list)")
    sent, failed = outbox.send_pending(db.session(), settings)
    click.echo(f"sent {sent}, failed {failed}")


@main.group("db")
def db_group() -> None:
    """Schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision) -> None:
    from flask import current_app

    from portal.migrate import upgrade

    upgrade(current_app.config["SETTINGS"].database_url, revision)


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision) -> None:
    from flask import current_app

    from portal.migrate import downgrade

    downgrade(current_app.config["SETTINGS"].database_url, revision)


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    from flask import current_app

    from portal.migrate import revision

    revision(current_app.config["SETTINGS"].database_url, message)


if __name__ == "__main__":
    main()
