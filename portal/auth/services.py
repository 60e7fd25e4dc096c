"""Sign-in, two-factor and password services. Views parse and render; the rules live here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.audit.trail import record
from portal.auth import throttle, totp
from portal.auth.devices import KnownDevice
from portal.auth.models import RecoveryCode, User
from portal.auth.passwords import Argon2Params, dummy_hash, hash_password, needs_rehash, verify_password
from portal.auth.sessions import revoke_user
from portal.config import Settings
from portal.db import utcnow


def argon2_params(settings: Settings) -> Argon2Params:
    return Argon2Params(settings.argon2_memory_kib, settings.argon2_iterations, settings.argon2_lanes)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user(session: Session, email: str) -> User | None:
    return session.execute(select(User).where(func.lower(User.email) == normalise_email(email))).scalar_one_or_none()


def two_factor_required(user: User) -> bool:
    role = user.role_enum
    return role is None or role.is_government


@dataclass
class SignIn:
    status: str  # ok | need_totp | need_enrol | failed | throttled
    user: User | None = None
    retry_at: datetime | None = None
    known_device: bool = False  # the attempt came from a browser known to the account


def limits(settings: Settings) -> throttle.Limits:
    return throttle.Limits(
        free=settings.login_free_failures,
        first_delay=timedelta(seconds=settings.login_delay_seconds),
        max_delay=timedelta(minutes=settings.login_max_delay_minutes),
        account_ceiling=settings.login_max_failures_account,
        account_window=timedelta(hours=settings.login_account_window_hours),
        address_limit=settings.login_max_failures_address,
        address_window=timedelta(minutes=settings.login_window_minutes))


def source_of(user: User | None, ip: str | None, device: KnownDevice | None) -> throttle.Source:
    """The throttle's source: this browser if it has signed in to the account before, else the address."""
    return throttle.Source(ip, device.device_for(user.id) if device is not None and user is not None else None)


def _hold(session: Session, settings: Settings, account: str, source: throttle.Source) -> throttle.Hold | None:
    return throttle.check(session, limits(settings), account=account, source=source)


def check_password(session: Session, settings: Settings, email: str, password: str, ip: str | None,
                   device: KnownDevice | None = None) -> SignIn:
    """The first factor. Failures are counted and audited; the caller shows one generic message."""
    account = normalise_email(email)
    user = find_user(session, account)
    source = source_of(user, ip, device)
    hold = _hold(session, settings, account, source)
    if hold is not None:
        record(session, "auth.signin", outcome="denied", reason="throttled", source_ip=ip,
               details={"account": account, "rule": hold.rule, "known_device": source.known})
        return SignIn("throttled", retry_at=hold.until, known_device=source.known)
    params = argon2_params(settings)
    if user is None:
        verify_password(password, dummy_hash(params))  # same time as a real check
        ok = False
    else:
        ok = verify_password(password, user.password_hash)
    if not ok or user is None or not user.active:
        throttle.note_failure(session, account=account, source=source)
        reason = "unknown_account" if user is None else ("disabled" if not user.active else "bad_password")
        record(session, "auth.signin", actor=user, outcome="failure", reason=reason, source_ip=ip,
               details={"account": account})
        return SignIn("failed")
    if needs_rehash(user.password_hash or "", params):
        user.password_hash = hash_password(password, params)
        record(session, "auth.password.rehash", actor=user, source_ip=ip)
    if user.totp_enabled:
        return SignIn("need_totp", user)
    if two_factor_required(user):
        return SignIn("need_enrol", user)
    return SignIn("ok", user)


def check_second_factor(session: Session, settings: Settings, user: User, code: str, ip: str | None,
                        *, recovery: bool = False, device: KnownDevice | None = None) -> SignIn:
    """The second factor, throttled like the first (the same counts: a code is a guess too)."""
    account = normalise_email(user.email)
    source = source_of(user, ip, device)
    hold = _hold(session, settings, account, source)
    if hold is not None:
        record(session, "auth.2fa", actor=user, outcome="denied", reason="throttled", source_ip=ip,
               details={"rule": hold.rule, "known_device": source.known})
        return SignIn("throttled", user, retry_at=hold.until, known_device=source.known)
    if recovery:
        ok = use_recovery_code(session, settings, user, code)
        action = "auth.2fa.recovery_code"
    else:
        counter = totp.match_counter(user.totp_secret or "", code, last_counter=user.totp_last_counter) \
            if user.totp_secret else None
        ok = counter is not None
        if ok:
            user.totp_last_counter = counter
        action = "auth.2fa"
    if not ok:
        throttle.note_failure(session, account=account, source=source)
        record(session, action, actor=user, outcome="failure", reason="bad_code", source_ip=ip)
        return SignIn("failed", user, known_device=source.known)
    record(session, action, actor=user, source_ip=ip)
    return SignIn("ok", user)


def signed_in(session: Session, settings: Settings, user: User, ip: str | None, method: str,
              device: KnownDevice | None = None) -> None:
    """The owner is in: this source's delays start again (nobody else's), and failures no
    rule looks at any more are forgotten."""
    source = source_of(user, ip, device)
    throttle.note_success(session, account=normalise_email(user.email), source=source)
    throttle.purge_old(session, limits(settings))
    record(session, "auth.signin", actor=user, source_ip=ip, details={"method": method, "known_device": source.known})


def use_recovery_code(session: Session, settings: Settings, user: User, code: str) -> bool:
    digest = totp.hash_recovery_code(code, settings.secret_key or "")
    row = session.execute(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest,
                                   RecoveryCode.used_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        return False
    row.used_at = utcnow()
    return True


def remaining_recovery_codes(session: Session, user: User) -> int:
    return session.execute(
        select(func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


def enrol_totp(session: Session, settings: Settings, user: User, secret: str, code: str,
               ip: str | None, device: KnownDevice | None = None) -> list[str] | None:
    """Turn on TOTP if ``code`` proves the authenticator holds ``secret``; returns the new
    recovery codes (shown once), or None when the code is wrong."""
    counter = totp.match_counter(secret, code, last_counter=None)
    if counter is None:
        throttle.note_failure(session, account=normalise_email(user.email), source=source_of(user, ip, device))
        record(session, "auth.2fa.enrol", actor=user, outcome="failure", reason="bad_code", source_ip=ip)
        return None
    user.totp_secret = secret
    user.totp_enabled_at = utcnow()
    user.totp_last_counter = counter
    codes = replace_recovery_codes(session, settings, user)
    revoke_user(session, user.id)
    record(session, "auth.2fa.enrol", actor=user, source_ip=ip)
    return codes


def replace_recovery_codes(session: Session, settings: Settings, user: User) -> list[str]:
    for old in session.execute(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).scalars():
        session.delete(old)
    codes = totp.new_recovery_codes()
    for c in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=totp.hash_recovery_code(c, settings.secret_key or "")))
    session.flush()
    return codes


def disable_totp(session: Session, user: User, ip: str | None) -> bool:
    if two_factor_required(user):
        return False
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    for old in session.execute(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).scalars():
        session.delete(old)
    revoke_user(session, user.id)
    record(session, "auth.2fa.disable", actor=user, source_ip=ip)
    return True


def set_password(session: Session, settings: Settings, user: User, new_password: str, *,
                 actor: User | None, ip: str | None) -> None:
    user.password_hash = hash_password(new_password, argon2_params(settings))
    user.password_changed_at = utcnow()
    revoke_user(session, user.id)
    record(session, "account.password.change", actor=actor or user, source_ip=ip,
           target_type="user", target_id=user.id)


def set_locale(session: Session, user: User, locale: str) -> None:
    user.locale = locale
