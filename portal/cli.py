"""The ``portal`` command. Every command runs inside an application context and calls the
same services as the web; commands that act for a person record it in the audit trail."""
from __future__ import annotations

import os
import sys
from pathlib import Path

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
    """Create instance/ keys (0600) if absent, with a DEMO CA and notice-signing certificate unless
    PORTAL_NOTICE_SIGNING_P12 is set, and migrate the database to head."""
    from flask import current_app

    from portal.encryption.instance import ensure_instance
    from portal.migrate import upgrade

    settings: Settings = current_app.config["SETTINGS"]
    for path in ensure_instance(settings):
        click.echo(f"created {path}")
    from portal import db
    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for

    keyring = keyring_for(settings.keyring_path)
    upgrade(settings.database_url, keyring=keyring)  # a migration may re-seal encrypted fields
    click.echo(f"database at head: {_redact(settings.database_url)}")
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
def informs() -> None:
    """Issued informs and their signed notices."""


@informs.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def informs_verify(file) -> None:
    """Check a notice file: its signature against the portal's CA (and CRL), and whether the
    portal issued these exact bytes and the inform is still in force.

    \b
    Exit codes: 0 valid and in force; 1 damaged (changed after signing, or no signature);
    2 intact, but the signing certificate is not trusted, expired or revoked; 3 not readable;
    4 the signature is valid but the inform was revoked, or the portal has no record of it."""
    import hashlib
    from pathlib import Path

    from flask import current_app
    from sqlalchemy import select

    from crypto.notice_verify import describe
    from crypto.pades import EXIT_VALID
    from portal import db
    from portal.core.templating import jdatetime
    from portal.informs import signing
    from portal.informs.models import Inform

    data = Path(file).read_bytes()
    verdict = signing.verify(current_app.config["SETTINGS"], data)
    click.echo("\n".join(describe(verdict)))
    digest = hashlib.sha256(data).hexdigest()
    inform = db.session().execute(select(Inform).where(Inform.notice_sha256 == digest)).scalar_one_or_none()
    code = verdict.exit_code
    if inform is None:
        click.echo("portal record: none; this portal issued no notice with these bytes")
        sys.exit(code if code != EXIT_VALID else 4)
    click.echo(f"portal record: inform {inform.number}, case {inform.report.reference}, issued "
               f"{jdatetime(inform.issued_at, 'en')}")
    if inform.revoked_at is not None:
        click.echo(f"REVOKED on {jdatetime(inform.revoked_at, 'en')}: {inform.revoke_reason}")
        sys.exit(code if code != EXIT_VALID else 4)
    click.echo("status: in force")
    sys.exit(code)


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
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256),
              help="Requests each worker serves at once (a long transfer holds one).")
def serve(host, port, workers, threads) -> None:
    """Serve with gunicorn and the portal's configuration (portal/serving/gunicorn_conf.py)."""
    from flask import current_app

    from portal.observability.gunicorn_hooks import prepare_metrics_dir

    # Every worker's metrics add up in one fresh directory, set before gunicorn starts.
    prepare_metrics_dir(current_app.config["SETTINGS"].instance_path)
    # The application factory, not the project's wsgi.py: `portal serve` works from any directory.
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "python:portal.serving.gunicorn_conf",
                               "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
                               "portal:create_app()"])


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A checkpoint file you kept outside the portal: also prove the current trail extends it.")
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The audit public key you trust (default: the portal's own key file).")
def audit_verify(checkpoint_file, public_key) -> None:
    """Walk the hash chain and check it against the newest signed checkpoint stored in the
    database; exit non-zero naming the first broken sequence number or the failed checkpoint.

    \b
    What each check proves against someone who can rewrite the database:
    - the chain: every event links to the one before (an edit or a gap shows), but a
      rewriter can recompute every hash;
    - the newest stored checkpoint (signed with the audit key, which lives outside the
      database): the trail was not truncated or rewritten below it. A rewriter who also
      deletes the checkpoint rows makes this check use an older one (its age is printed)
      or none ("none in the database" is printed);
    - --checkpoint FILE, a checkpoint an auditor kept elsewhere (`portal audit checkpoint
      --out`, or downloaded from the audit console): no database rewrite can take it back,
      so only this proves the trail still extends what it was when the file was signed."""
    import json
    import time
    from datetime import datetime, timezone
    from pathlib import Path

    from flask import current_app

    from crypto import key_id_of
    from portal import db
    from portal.audit import checkpoints
    from portal.audit.verify import verify_chain

    try:
        pem = Path(public_key).read_bytes() if public_key else \
            checkpoints.signing_key(str(current_app.config["SETTINGS"].audit_key_path)).public_key_pem()
        key_id_of(pem)
    except ValueError as exc:
        raise click.ClickException(f"the public key is not usable: {exc}") from None
    t0 = time.perf_counter()
    # A snapshot (on SQLite a deferred transaction: no write lock while walking).
    with db.engine().connect().execution_options(read_only_snapshot=True) as conn:
        # Read before the walk: the chain walked then reaches at least this checkpoint's event.
        stored_cp = checkpoints.newest(conn)
        result = verify_chain(conn)
        if not result.ok:
            click.echo(f"BROKEN at sequence {result.first_bad_seq}: {result.problem}", err=True)
            sys.exit(1)
        dt = time.perf_counter() - t0
        stored = checkpoints.check_stored(conn, pem, stored_cp)
        if not stored.ok:
            click.echo(f"STORED CHECKPOINT FAILED (#{stored_cp.id}, {stored_cp.reason}, signed "
                       f"{stored_cp.signed_at:%Y-%m-%d %H:%M}Z, event {stored_cp.seq}): {stored.message}", err=True)
            sys.exit(1)
        external = None
        if checkpoint_file:
            try:
                doc = json.loads(Path(checkpoint_file).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise click.ClickException("the checkpoint file is not JSON") from None
            ok, external = checkpoints.check(conn, doc if isinstance(doc, dict) else {}, pem)
            if not ok:
                click.echo(f"CHECKPOINT FAILED: {external}", err=True)
                sys.exit(1)
    rate = result.count / dt if dt > 0 else 0
    click.echo(f"ok: {result.count} events, head {result.head_seq} {result.head_hash} ({rate:,.0f} events/s)")
    if stored_cp is None:
        click.echo("stored checkpoint: none in the database; only the chain's own consistency was checked "
                   "(the daily job and every export sign one)")
    else:
        age = datetime.now(timezone.utc) - stored_cp.signed_at
        click.echo(f"stored checkpoint #{stored_cp.id} ({stored_cp.reason}, signed {stored_cp.signed_at:%Y-%m-%d %H:%M}Z, "
                   f"{age.days} days ago; {stored.stored} stored): {stored.message}")
    if external:
        click.echo(f"checkpoint file: {external}")


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
        from portal.audit.export import write_private

        write_private(out, [json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")])
    click.echo(f"checkpoint at event {cp.seq} {cp.hash}")


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--from", "date_from", default="", help="YYYY-MM-DD (JST), inclusive.")
@click.option("--to", "date_to", default="", help="YYYY-MM-DD (JST), inclusive.")
def audit_export(fmt, out, date_from, date_to) -> None:
    """Export (or archive a closed period of) the trail to a signed file, in constant memory.
    The file is readable by its owner only (0600) and appears whole or not at all."""
    from flask import current_app

    from portal import db
    from portal.audit import checkpoints
    from portal.audit.export import Filter, range_problems, stream, write_private
    from portal.audit.trail import record

    for name, problem in range_problems(date_from, date_to).items():
        raise click.BadParameter("the range ends before it starts" if problem == "reversed"
                                 else "not a date: use YYYY-MM-DD", param_hint=f"--{name}")
    key = checkpoints.signing_key(str(current_app.config["SETTINGS"].audit_key_path))
    f = Filter(date_from=date_from, date_to=date_to)
    record(db.session(), "audit.export", details={"format": fmt, "via": "cli", **f.active()})
    db.commit()
    cp = checkpoints.make(db.session(), key, "export")
    db.commit()
    try:
        n = write_private(out, stream(db.engine(), f, fmt, key=key, exporter="cli",
                                      checkpoint=checkpoints.document(cp, key.public_key_pem())["payload"]))
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
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

    from portal.encryption.opener import keyring_for

    return keyring_for(current_app.config["SETTINGS"].keyring_path)


@keys.command("status")
def keys_status() -> None:
    """The active KEK, what each KEK wraps (per holder of the registry), the KEKs being
    retired and the wraps in flight. Exit 1 if a data key's KEK is not in the keyring."""
    from portal import db
    from portal.encryption import leases, registry

    kr = _keyring()
    s = db.session()
    usage = registry.kek_usage_by_holder(s)
    marks = leases.marks(s)
    in_flight = leases.live(s)
    s.rollback()

    def line(kek: str) -> str:
        by = {k: n for k, n in usage.get(kek, {}).items() if k != registry.IN_FLIGHT}
        held = f" ({', '.join(f'{k} {n}' for k, n in sorted(by.items()))})" if by else ""
        flight = usage.get(kek, {}).get(registry.IN_FLIGHT, 0)
        return f"{kek}  data keys: {sum(by.values())}{held}" + (f"  in flight: {flight}" if flight else "")

    click.echo(f"active: {kr.active_id}")
    for kek in kr.ids():
        mark = "*" if kek == kr.active_id else " "
        retiring = "  RETIRING (no new data key is wrapped under it)" if kek in marks else ""
        click.echo(f" {mark} {line(kek)}{retiring}")
    unknown = sorted(set(usage) - set(kr.ids()))
    for kek in unknown:
        click.echo(f" ! {line(kek)}  (NOT IN THE KEYRING)")
    click.echo(f"wraps in flight: {len(in_flight)}")
    for lease in in_flight:
        click.echo(f"   {lease.kek_id}  {lease.purpose}  {lease.holder}  since {lease.taken_at:%Y-%m-%d %H:%M:%S}Z"
                   f"  (ignored after {lease.expires_at:%Y-%m-%d %H:%M:%S}Z)")
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
    from portal.audit.trail import record
    from portal.encryption.rotation import pending, rewrap

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
    """Remove a KEK from the keyring. The KEK is first marked as retiring (nothing new is
    wrapped under it), then refused while any data key uses it, committed or in flight."""
    from sqlalchemy.exc import OperationalError

    from crypto import KeyringError
    from portal import db
    from portal.audit.trail import record
    from portal.encryption.rotation import retire

    kr = _keyring()
    if kek_id not in kr.ids():
        raise click.ClickException(f"no KEK {kek_id} in the keyring")
    s = db.session()
    try:
        retire(s, kr, kek_id)
    except (KeyringError, OperationalError) as exc:
        s.rollback()
        record(s, "keys.retire", outcome="failure", reason="in_use" if isinstance(exc, KeyringError) else "busy",
               details={"kek": kek_id})
        db.commit()
        if isinstance(exc, OperationalError):
            raise click.ClickException("the database stayed busy (a long transaction?); try again") from None
        raise click.ClickException(str(exc)) from None
    record(s, "keys.retire", details={"kek": kek_id})
    db.commit()
    click.echo(f"retired {kek_id}")


@main.group()
def blobs() -> None:
    """The blob store: attachments, inform notices and whatever else the registry lists."""


def _hours(value: float):
    from datetime import timedelta

    return timedelta(hours=value)


@blobs.command("check")
@click.option("--deep", is_flag=True, help="Also decrypt every blob (to nowhere) and authenticate every segment.")
@click.option("--older-than", "older_than", default=24.0, show_default=True, type=click.FloatRange(min=1),
              help="Hours after its last write from which a partial upload counts as stale.")
def blobs_check(deep, older_than) -> None:
    """Every record against its blob, for every holder in the registry of encrypted things.

    Reports records without their blob, blobs no record names, stale partial uploads and,
    with --deep, every blob that fails to authenticate (missing, truncated, extended,
    tampered, wrong key, sealed for another record), then the rate in MB/s. Nothing is changed
    and no plaintext is written anywhere.

    Exit status: 0 everything is in order; 1 problems found (each is listed); 2 bad usage;
    3 the check could not run (keyring or database unreadable).
    """
    from flask import current_app

    from portal import db
    from portal.attachments.services import store_for
    from portal.encryption import blobcheck

    try:
        kr = _keyring()
        s = db.session()
        report = blobcheck.check(s, store_for(current_app.config["SETTINGS"], db.session), kr, deep=deep,
                                 stale=_hours(older_than))
        s.rollback()
    except Exception as exc:  # noqa: BLE001 - whatever stops the check is reported, with exit 3
        click.echo(f"the check could not run: {type(exc).__name__}: {exc}", err=True)
        sys.exit(3)
    holders = ", ".join(h.label for h in _blob_holders())
    click.echo(f"records naming a blob: {report.records} ({holders}); blobs in the store: {report.blobs}")
    for r in report.missing:
        click.echo(f"record without blob: {r.holder} #{r.row_id} blob {r.blob_key}")
    for o in report.orphans:
        when = f" (stored {o.modified:%Y-%m-%d %H:%M})" if o.modified else ""
        click.echo(f"orphan blob (no record names it): {o.key}{when}")
    for o in report.recent_orphans:
        click.echo(f"recent blob without a record yet (an upload committing?): {o.key}")
    for path, age in report.partials:
        click.echo(f"stale partial upload: {path} (last written {age / 3600:.1f} h ago); "
                   "`portal blobs clean-partial` removes it")
    if report.partials_in_progress:
        click.echo(f"uploads in progress: {report.partials_in_progress}")
    for bad in report.bad:
        r = bad.ref
        click.echo(f"BAD {r.holder} #{r.row_id} blob {r.blob_key}: {bad.problem} ({bad.detail})")
    if deep:
        click.echo(f"deep: {report.checked} blobs authenticated, {len(report.bad)} bad, "
                   f"{report.bytes_read / 1e6:.1f} MB in {report.seconds:.2f} s: {report.mb_per_s:.1f} MB/s")
    click.echo("ok: every record has its blob and every blob its record" if report.ok else "problems found")
    if not report.ok:
        sys.exit(1)


def _blob_holders():
    from portal.encryption import registry

    return registry.blob_holders()


@blobs.command("clean-partial")
@click.option("--older-than", "older_than", default=24.0, show_default=True, type=click.FloatRange(min=1),
              help="Hours since the last write (at least 1; keep it well beyond the longest transfer).")
def blobs_clean_partial(older_than) -> None:
    """Remove what killed workers left: partial uploads on the directory store (a temporary
    untouched for --older-than hours whose writer no longer holds its lock: a live upload,
    however slow, keeps both) and, on the database store, chunks no record names that are
    older than that."""
    from flask import current_app

    from portal import db
    from portal.attachments.services import store_for
    from portal.audit.trail import record
    from portal.encryption import blobcheck

    s = db.session()
    out = blobcheck.clean_partial(s, store_for(current_app.config["SETTINGS"], db.session), _hours(older_than))
    record(s, "blobs.clean_partial", details={"removed": len(out.removed), "in_use": len(out.in_use),
                                              "older_than_hours": older_than})
    db.commit()
    for item in out.removed:
        click.echo(f"removed {item}")
    for item in out.in_use:
        click.echo(f"kept (its upload is still writing): {item}")
    click.echo(f"removed {len(out.removed)}; kept {len(out.in_use)} in use and {out.recent} younger than "
               f"{older_than:g} h")


@main.group()
def jobs() -> None:
    """Background jobs (run from cron; safe on several servers at once)."""


@jobs.command("run")
@click.option("--date", "on", default=None,
              help="Run (or finish) the job of this missed day (YYYY-MM-DD, not after today) instead of today's.")
def jobs_run(on) -> None:
    """Send due-date reminders and overdue notices, once per day across all servers.

    Each notice is sent exactly once: a run that failed or was killed is finished by the next
    invocation (a killed one after its 5-minute lease runs out), which skips what was sent.
    Without --date, interrupted runs of the last 7 days are finished first."""
    from datetime import date as _date

    from flask import current_app

    from portal import db
    from portal.core.timeutil import today_jst
    from portal.review.jobs import BUSY, FINISHED, RESUMED, run_daily

    today = today_jst()
    try:
        day = _date.fromisoformat(on) if on else today
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
    if day > today:
        raise click.BadParameter(f"{day} is after today ({today}, JST)", param_hint="--date")
    out = run_daily(db.session(), current_app.config["SETTINGS"], day, catch_up=on is None)
    for earlier in out.earlier:
        click.echo(f"finished the interrupted daily job for {earlier.day}: {earlier.reminders} reminders, "
                   f"{earlier.overdue} overdue notices")
    if out.state == FINISHED:
        click.echo(f"daily job for {day} already ran (another server or an earlier run)")
    elif out.state == BUSY:
        click.echo(f"daily job for {day} is running on another server; it finishes it (or the next run does)")
    else:
        resumed = " (finished a run interrupted earlier; what it sent was not sent again)" if out.state == RESUMED else ""
        click.echo(f"daily job for {day}: {out.reminders} reminders, {out.overdue} overdue notices{resumed}")


@main.command("scan")
@click.option("--pending", is_flag=True,
              help="Scan the files left pending (scanner down at upload, or a failed scan) instead of rescanning clean ones.")
@click.option("--older-than", "older_than", default=12.0, show_default=True, type=click.FloatRange(min=0),
              help="Rescan only clean files last scanned more than this many hours ago: a run that was stopped "
                   "resumes where it was.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Stop after this many files.")
@click.option("--rate", "mb_per_s", default=50.0, show_default=True, type=click.FloatRange(min=0),
              help="At most this many MB per second through the scanner (0: no limit), so uploads keep theirs.")
def scan(pending, older_than, limit, mb_per_s) -> None:
    """Rescan every clean file with clamd's current signatures, quarantining what they now
    catch (the file becomes infected: listed as refused, never served); or, with --pending,
    scan the files that have no verdict yet. Each stored blob is decrypted segment by segment
    and streamed to clamd; nothing is written in plaintext. Every verdict is committed as it
    comes and recorded in the audit trail. Exit status 1 if the scanner could not be reached
    or a file was found infected."""
    from datetime import timedelta

    from flask import current_app

    from portal import db
    from portal.attachments import scanning, services
    from portal.encryption.opener import keyring_for

    settings = current_app.config["SETTINGS"]
    client = scanning.scanner_for(settings)
    if client is None:
        raise click.ClickException("no scanner: set PORTAL_CLAMD_SOCKET (README \"Malware scanning\")")
    if not client.ping():
        raise click.ClickException(f"clamd does not answer at {settings.clamd_socket}; nothing was scanned")
    click.echo(f"scanner: {client.version()}")

    def shown(progress, att) -> None:
        found = f" {att.scan_signature}" if att.scan_signature else ""
        click.echo(f"[{progress.done}/{progress.total}] attachment {att.id} ({att.size / 1e6:,.1f} MB): "
                   f"{att.scan_state}{found}")

    out = scanning.run_scans(db.session(), services.store_for(settings, db.session), keyring_for(settings.keyring_path),
                             client, states=(scanning.PENDING, scanning.ERROR) if pending else (scanning.CLEAN,),
                             older_than=None if pending else timedelta(hours=older_than), limit=limit,
                             mb_per_s=mb_per_s or None, how="pending" if pending else "rescan",
                             opener=services.plaintext, on_file=shown)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(out.states.items())) or "nothing to scan"
    click.echo(f"scanned {out.done} of {out.total} files ({out.bytes / 1e6:,.1f} MB): {summary}")
    for att_id in out.newly_infected:
        click.echo(f"QUARANTINED: attachment {att_id} is caught by the current signatures", err=True)
    if out.unavailable:
        click.echo("the scanner went away: run the command again to finish", err=True)
    if out.unavailable or out.newly_infected or out.states.get(scanning.INFECTED):
        sys.exit(1)


@main.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--keys-separately", "keys_dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the keyring, audit key and secret key to this directory instead, to keep them apart "
                   "from the data.")
@click.option("--pg-bin", default=None, help="Directory of pg_dump of the server's major version (default: PATH).")
def backup(dest, keys_dest, pg_bin) -> None:
    """Write one consistent backup set to DEST (a new or empty directory) while the portal
    serves: the database, the blobs it names, the keyring, the audit signing key and the secret
    key, with a manifest of every file's SHA-256 signed with the audit key.

    \b
    The set holds the keys with the data: anyone who has it reads everything. Keep it like
    the keyring itself (encrypted storage, few readers), or use --keys-separately DIR and
    store the two directories apart. Exit status 1 also when the set is complete but the
    blob store lacked a blob the database names (printed; see `portal blobs check`)."""
    from flask import current_app

    from portal import db
    from portal.attachments.services import store_for
    from portal.backup.database import DatabaseError
    from portal.backup.take import BackupError, take

    settings = current_app.config["SETTINGS"]
    try:
        t = take(settings, db.engine(), store_for(settings, db.session), dest, keys_dest=keys_dest, pg_bin=pg_bin,
                 log=click.echo)
    except (BackupError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup set {t.dest}: {t.files} files, {t.bytes / 1e6:,.1f} MB, {t.blobs} blobs, "
               f"{t.seconds:.1f} s ({t.attempts} snapshot attempt{'s' if t.attempts > 1 else ''})")
    if t.keys_dest:
        click.echo(f"keys in {t.keys_dest}: store them apart from the set")
    click.echo(f"manifest sha256 {t.manifest_sha256}, signed with audit key {t.key_id}")
    for key in t.missing:
        click.echo(f"WARNING: blob {key} is named by the database but missing from the blob store", err=True)
    if t.missing:
        sys.exit(1)


@main.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--keys", "keys_src", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The keys directory of a set taken with --keys-separately.")
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The audit public key you keep: the set must be signed with it.")
@click.option("--pg-bin", default=None, help="Directory of pg_restore of the server's major version (default: PATH).")
def restore(src, keys_src, public_key, pg_bin) -> None:
    """Restore a backup set into an empty database (PORTAL_DATABASE_URL) and an empty instance
    folder (PORTAL_INSTANCE_PATH). The set is verified first (signature, every file's SHA-256);
    anything non-empty is refused and nothing is written. Afterwards the audit trail, every
    blob, wrapped key and sealed value are checked; exit status 1 if any check fails."""
    from flask import current_app

    from portal.attachments.blobstore import DirectoryBlobStore
    from portal.backup.database import DatabaseError
    from portal.backup.restore import RestoreError, check_restored, record_restore, restore as do_restore
    from portal.db import make_engine

    settings = current_app.config["SETTINGS"]
    try:
        r = do_restore(settings, src, keys_src=keys_src, public_key=public_key.read_bytes() if public_key else None,
                       pg_bin=pg_bin, log=click.echo)
    except (RestoreError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored the set of {r.manifest.get('created_at')} ({r.files} files, {r.blobs} blobs) "
               f"in {r.seconds:.1f} s")
    import sqlalchemy as sa

    import time

    t0 = time.perf_counter()
    engine = make_engine(str(settings.database_url), poolclass=sa.pool.NullPool)
    try:
        store = DirectoryBlobStore(settings.blob_dir) if settings.blob_store == "directory" else None
        checked = check_restored(settings, engine, store, r.manifest)
        if checked.ok:
            record_restore(engine, r)
    finally:
        engine.dispose()
    for note in checked.notes:
        click.echo(note)
    click.echo(f"checks took {time.perf_counter() - t0:.1f} s")
    for problem in checked.problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    if not checked.ok:
        sys.exit(1)
    click.echo("ok: the restored instance is whole; start the portal")


@main.group("db")
def db_group() -> None:
    """Schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision) -> None:
    from flask import current_app

    from portal.migrate import upgrade

    settings = current_app.config["SETTINGS"]
    upgrade(settings.database_url, revision, keyring=_keyring_if_present(settings))


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision) -> None:
    from flask import current_app

    from portal.migrate import downgrade

    settings = current_app.config["SETTINGS"]
    downgrade(settings.database_url, revision, keyring=_keyring_if_present(settings))


def _keyring_if_present(settings: Settings):
    """The instance's keyring for migrations that re-seal encrypted fields; without one, such
    a migration stops with a message saying so."""
    from portal.encryption.opener import keyring_for

    return keyring_for(settings.keyring_path) if settings.keyring_path.exists() else None


@db_group.command("recount")
def db_recount() -> None:
    """Rebuild the report tallies from the reports, and the case workers' unread cases from the
    messages and read marks (after a bulk load with triggers disabled, or one that went around
    the services)."""
    from portal import db
    from portal.dialogue import unread
    from portal.reports.tallies import rebuild

    with db.engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            # No writer while recounting.
            conn.exec_driver_sql("LOCK TABLE reports, messages, read_marks IN SHARE MODE")
        n = rebuild(conn)
        rows = unread.rebuild_all(conn)
    click.echo(f"report tallies rebuilt: {n} reports")
    click.echo(f"unread cases rebuilt: {rows} rows")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    from flask import current_app

    from portal.migrate import revision

    revision(current_app.config["SETTINGS"].database_url, message)


if __name__ == "__main__":
    main()
