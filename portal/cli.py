"""The ``portal`` command. Every command runs inside an application context and calls the
same services as the web; commands that act for a person record it in the audit trail."""
from __future__ import annotations

import os
import sys

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
        from portal.audit.trail import record

        record(s, "account.create", outcome="failure", reason=exc.reason, details={"via": "cli", "role": role})
        s.commit()
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
    # The application factory, not the project's wsgi.py: `portal serve` works from any directory.
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
                               "--access-logfile", "-", "portal:create_app()"])


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A checkpoint file you kept: also prove the current trail extends it.")
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The audit public key you trust (default: the portal's own key file).")
def audit_verify(checkpoint_file, public_key) -> None:
    """Walk the hash chain; exit non-zero naming the first broken sequence number."""
    import json
    import time
    from pathlib import Path

    from flask import current_app

    from portal import db
    from portal.audit import checkpoints
    from portal.audit.verify import verify_chain

    t0 = time.perf_counter()
    with db.engine().connect() as conn:
        result = verify_chain(conn)
        if not result.ok:
            click.echo(f"BROKEN at sequence {result.first_bad_seq}: {result.problem}", err=True)
            sys.exit(1)
        if checkpoint_file:
            pem = Path(public_key).read_bytes() if public_key else \
                checkpoints.signing_key(str(current_app.config["SETTINGS"].audit_key_path)).public_key_pem()
            try:
                doc = json.loads(Path(checkpoint_file).read_text(encoding="utf-8"))
            except ValueError:
                raise click.ClickException("the checkpoint file is not JSON") from None
            ok, message = checkpoints.check(conn, doc, pem)
            if not ok:
                click.echo(f"CHECKPOINT FAILED: {message}", err=True)
                sys.exit(1)
            click.echo(f"checkpoint: {message}")
    dt = time.perf_counter() - t0
    rate = result.count / dt if dt > 0 else 0
    click.echo(f"ok: {result.count} events, head {result.head_seq} {result.head_hash} ({rate:,.0f} events/s)")


@audit.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None, help="Also write the file here.")
def audit_checkpoint(out) -> None:
    """Sign the current head of the chain now."""
    import json

    from flask import current_app

    from portal import db
    from portal.audit import checkpoints

    key = checkpoints.signing_key(str(current_app.config["SETTINGS"].audit_key_path))
    cp = checkpoints.make(db.session(), key, "manual")
    db.commit()
    doc = checkpoints.document(cp, key.public_key_pem())
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=2)
    click.echo(f"checkpoint at event {cp.seq} {cp.hash}")


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--from", "date_from", default="", help="YYYY-MM-DD (JST), inclusive.")
@click.option("--to", "date_to", default="", help="YYYY-MM-DD (JST), inclusive.")
def audit_export(fmt, out, date_from, date_to) -> None:
    """Export (or archive a closed period of) the trail to a signed file, in constant memory."""
    from flask import current_app

    from portal import db
    from portal.audit import checkpoints
    from portal.audit.export import Filter, stream
    from portal.audit.trail import record

    key = checkpoints.signing_key(str(current_app.config["SETTINGS"].audit_key_path))
    f = Filter(date_from=date_from, date_to=date_to)
    record(db.session(), "audit.export", details={"format": fmt, "via": "cli", **f.active()})
    db.commit()
    cp = checkpoints.make(db.session(), key, "export")
    db.commit()
    n = 0
    with open(out, "wb") as fh:
        for chunk in stream(db.engine(), f, fmt, key=key, exporter="cli",
                            checkpoint=checkpoints.document(cp, key.public_key_pem())["payload"]):
            fh.write(chunk)
            n += len(chunk)
    click.echo(f"wrote {n:,} bytes to {out}; verify with: python -m crypto.audit_verify {out} PUBLIC_KEY.pem")


@main.group()
def mail() -> None:
    """The outbox."""


@mail.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def mail_list(limit) -> None:
    """Show the newest messages in the outbox (for offline installations). Invitation links are
    hidden: only their recipient may use them (PORTAL_SHOW_MAIL_LINKS shows them in development)."""
    from flask import current_app

    from portal import db
    from portal.mail import outbox

    show_links = current_app.config["SETTINGS"].mail_links_shown
    for m in outbox.for_readers(outbox.recent(db.session(), limit=limit), show_links=show_links):
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


@main.group()
def keys() -> None:
    """Key-encryption keys: status, rotation, re-wrapping, retirement."""


def _keyring():
    from flask import current_app

    from portal.attachments.keys import keyring_for

    return keyring_for(current_app.config["SETTINGS"].keyring_path)


@keys.command("status")
def keys_status() -> None:
    """The active KEK and how many data keys each KEK wraps."""
    from portal import db
    from portal.rotation import usage

    kr = _keyring()
    counts = usage(db.session())
    click.echo(f"active: {kr.active_id}")
    for kek in kr.ids():
        mark = "*" if kek == kr.active_id else " "
        click.echo(f" {mark} {kek}  data keys: {counts.get(kek, 0)}")
    unknown = sorted(set(counts) - set(kr.ids()))
    for kek in unknown:
        click.echo(f" ! {kek}  data keys: {counts[kek]}  (NOT IN THE KEYRING)")
    if unknown:
        sys.exit(1)


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new KEK the active one (existing data keys keep working until re-wrapped)."""
    from portal import db
    from portal.audit.trail import record

    new = _keyring().rotate()
    record(db.session(), "keys.rotate", details={"kek": new})
    db.commit()
    click.echo(f"active KEK is now {new}; run `portal keys rewrap` to move data keys to it")


@keys.command("rewrap")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10000))
def keys_rewrap(batch) -> None:
    """Re-wrap every data key under the active KEK (resumable, idempotent, safe while serving)."""
    from portal import db
    from portal.rotation import pending, rewrap
    from portal.audit.trail import record

    kr = _keyring()
    s = db.session()
    total = pending(s, kr.active_id)
    s.rollback()
    with click.progressbar(length=total, label="re-wrapping data keys") as bar:
        moved = rewrap(s, kr, batch=batch, progress=bar.update)
    record(s, "keys.rewrap", details={"kek": kr.active_id, "moved": moved})
    db.commit()
    click.echo(f"re-wrapped {moved} data keys under {kr.active_id}")


@keys.command("retire")
@click.argument("kek_id")
def keys_retire(kek_id) -> None:
    """Remove a KEK from the keyring; refused while any data key uses it."""
    from crypto import KeyringError
    from portal import db
    from portal.rotation import retire
    from portal.audit.trail import record

    kr = _keyring()
    if kek_id not in kr.ids():
        raise click.ClickException(f"no KEK {kek_id} in the keyring")
    try:
        retire(db.session(), kr, kek_id)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None
    record(db.session(), "keys.retire", details={"kek": kek_id})
    db.commit()
    click.echo(f"retired {kek_id}")


@main.group()
def blobs() -> None:
    """The attachment blob store."""


@blobs.command("check")
def blobs_check() -> None:
    """List blobs no record refers to and records whose blob is missing; non-zero if any."""
    from flask import current_app

    from portal import db
    from portal.attachments.services import check_blobs, store_for

    result = check_blobs(db.session(), store_for(current_app.config["SETTINGS"], db.session))
    for key in result["orphans"]:
        click.echo(f"orphan blob (no record): {key}")
    for key in result["missing"]:
        click.echo(f"record without blob: {key}")
    for path in result.get("temporaries", []):
        click.echo(f"unfinished upload: {path}")
    bad = any(result.get(k) for k in ("orphans", "missing", "temporaries"))
    click.echo("problems found" if bad else "ok: every record has its blob and every blob its record")
    if bad:
        sys.exit(1)


@main.group()
def jobs() -> None:
    """Background jobs (run from cron; safe on several servers at once)."""


@jobs.command("run")
@click.option("--date", "on", default=None, help="Run as if today were this date (YYYY-MM-DD); for catching up.")
def jobs_run(on) -> None:
    """Send due-date reminders and overdue notices, once per day across all servers."""
    from datetime import date as _date

    from flask import current_app

    from portal import db
    from portal.core.timeutil import today_jst
    from portal.review.jobs import run_daily

    try:
        today = _date.fromisoformat(on) if on else today_jst()
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
    out = run_daily(db.session(), current_app.config["SETTINGS"], today)
    if not out.ran:
        click.echo(f"daily job for {today} already ran (another server or an earlier run)")
        return
    click.echo(f"daily job for {today}: {out.reminders} reminders, {out.overdue} overdue notices")


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


@db_group.command("recount")
def db_recount() -> None:
    """Rebuild the report tallies from the reports (after a bulk load with triggers disabled)."""
    from portal import db
    from portal.reports.tallies import rebuild

    with db.engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE reports IN SHARE MODE")  # no writer while recounting
        n = rebuild(conn)
    click.echo(f"report tallies rebuilt: {n} reports")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    from flask import current_app

    from portal.migrate import revision

    revision(current_app.config["SETTINGS"].database_url, message)


if __name__ == "__main__":
    main()
