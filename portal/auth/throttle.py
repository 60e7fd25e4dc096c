"""Sign-in throttling that holds against guessing and spraying but cannot lock the owner out.

Kept in the database so that it holds across processes and servers. Only attempts that were
checked count: a refused attempt never reaches the password or the code, and is not a failure.
Three rules (OWASP Authentication Cheat Sheet; NIST SP 800-63B 5.2.2):

1. **Per account and source** — the source is a browser known to the account (a signed
   cookie set at a successful sign-in, ``portal.auth.devices``) or else the client address.
   The first ``free`` failures cost nothing; then each attempt waits ``first_delay``, doubling
   with every further failure up to ``max_delay``. Failures are remembered for the account
   window; a successful sign-in from that source forgets them, and only them.
2. **Per address, across accounts** (spraying one password over many accounts): at most
   ``address_limit`` failures within ``address_window``.
3. **Per account, across all sources** (guessing spread over many addresses): at most
   ``account_ceiling`` failures within ``account_window``.

Rules 2 and 3 hold unknown sources only: a browser the owner has signed in with before is
throttled by rule 1 alone, so a stranger can slow the account down for strangers but never
shut its owner out. Rule 1 keys on the source, so a stranger's failures from one address do
not delay the owner at another. A successful sign-in clears nothing but its own source's
failures: the owner signing in does not give an attacker a fresh allowance.

On PostgreSQL an attempt holds a transaction-scoped advisory lock on its account-and-source
key from the check until the commit, so parallel attempts from one source are counted one
after another (SQLite transactions begin IMMEDIATE and are serial anyway). Rules 2 and 3 are
not locked: they can be overshot by at most the number of requests served at the same time.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portal.auth.models import LoginFailure
from portal.db import utcnow

PAIR, ADDRESS, ACCOUNT = "pair", "address", "account"


@dataclass(frozen=True)
class Limits:
    free: int
    first_delay: timedelta
    max_delay: timedelta
    account_ceiling: int
    account_window: timedelta
    address_limit: int
    address_window: timedelta

    @property
    def longest_window(self) -> timedelta:
        return max(self.account_window, self.address_window)

    def delay_after(self, failures: int) -> timedelta | None:
        """The wait after ``failures`` failures from one source, or None while they are free."""
        if failures < self.free:
            return None
        doublings = min(failures - self.free, 40)  # 2**40 minutes exceeds any cap
        return min(self.first_delay * (2 ** doublings), self.max_delay)


def address_key(ip: str | None) -> str | None:
    """The unit an address rule counts: an IPv4 address, or the /64 an IPv6 address lies in
    (one subscriber is usually given a whole /64, so single IPv6 addresses cost nothing to rotate)."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(frozen=True)
class Source:
    """Where an attempt comes from: a browser known to the account, else the client address
    (see ``address_key``)."""

    address: str | None
    device: str | None = None  # the id of a browser that has signed in to this account before

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", address_key(self.address))

    @property
    def known(self) -> bool:
        return self.device is not None

    @property
    def key(self) -> str:
        return f"device:{self.device}" if self.device else f"address:{self.address or '-'}"


@dataclass(frozen=True)
class Hold:
    until: datetime
    rule: str  # pair | address | account


def pair_key(account: str, source: Source) -> str:
    # Hashed: an e-mail address and a source together may exceed the column.
    return hashlib.sha256(f"{account}\n{source.key}".encode()).hexdigest()


def _lock(session: Session, key: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(n)))


def _sliding(session: Session, kind: str, key: str, limit: int, window: timedelta, now: datetime) -> datetime | None:
    """With ``limit`` or more failures inside the window: when enough of them will have aged out."""
    since = now - window
    count = session.execute(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.kind == kind, LoginFailure.key == key, LoginFailure.at > since)).scalar_one()
    if count < limit:
        return None
    nth_oldest = session.execute(
        select(LoginFailure.at).where(LoginFailure.kind == kind, LoginFailure.key == key, LoginFailure.at > since)
        .order_by(LoginFailure.at).offset(count - limit).limit(1)
    ).scalar_one()
    return nth_oldest + window


def check(session: Session, limits: Limits, *, account: str, source: Source,
          now: datetime | None = None) -> Hold | None:
    """The hold on an attempt now, or None if it may be checked. The latest of the rules
    that apply wins, so the time it names is when an attempt will be taken."""
    now = now or utcnow()
    key = pair_key(account, source)
    _lock(session, key)
    holds: list[Hold] = []
    count, last = session.execute(
        select(func.count(), func.max(LoginFailure.at)).where(
            LoginFailure.kind == PAIR, LoginFailure.key == key, LoginFailure.at > now - limits.account_window)
    ).one()
    delay = limits.delay_after(count)
    if delay is not None and last is not None and last + delay > now:
        holds.append(Hold(last + delay, PAIR))
    if not source.known:
        if source.address:
            until = _sliding(session, ADDRESS, source.address, limits.address_limit, limits.address_window, now)
            if until is not None:
                holds.append(Hold(until, ADDRESS))
        until = _sliding(session, ACCOUNT, account, limits.account_ceiling, limits.account_window, now)
        if until is not None:
            holds.append(Hold(until, ACCOUNT))
    return max(holds, key=lambda h: h.until, default=None)


def note_failure(session: Session, *, account: str, source: Source, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.add(LoginFailure(kind=PAIR, key=pair_key(account, source), at=now))
    session.add(LoginFailure(kind=ACCOUNT, key=account, at=now))
    if source.address:
        session.add(LoginFailure(kind=ADDRESS, key=source.address, at=now))
    session.flush()


def note_success(session: Session, *, account: str, source: Source) -> None:
    """The owner got in from this source: its delays start again. The account's and the
    address's counts stay (they age out), so a sign-in gives nobody else new guesses."""
    session.execute(delete(LoginFailure).where(LoginFailure.kind == PAIR, LoginFailure.key == pair_key(account, source)))


PURGE_BATCH = 5000


def purge_old(session: Session, limits: Limits, now: datetime | None = None) -> None:
    """Forget failures no rule looks at any more (called at each successful sign-in, a batch
    at a time; rows another sign-in is purging are skipped, so two never wait on each other)."""
    old = (select(LoginFailure.id).where(LoginFailure.at < (now or utcnow()) - limits.longest_window)
           .limit(PURGE_BATCH).with_for_update(skip_locked=True))
    session.execute(delete(LoginFailure).where(LoginFailure.id.in_(old)))
