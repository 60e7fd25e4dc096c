"""Wraps in flight and key retirement, so that a KEK is never retired under a data key that
is about to be committed (DESIGN §7: "an old KEK is retired only when nothing references it").

An upload wraps its data key some time before the transaction that stores the wrapped key
commits (on PostgreSQL that commit may wait for the audit lock). Counting committed rows alone
would let ``keys retire`` remove the KEK in between. Both sides therefore write, then read:

- the wrapping side commits a lease naming the active KEK in its own short transaction (a
  separate connection), *then* reads the retirement marks; if its KEK is marked it drops the
  lease and starts again with the keyring re-read (``acquire``). The lease is dropped once the
  transaction that stores the wrapped key has ended (``release``), committed or not: until
  then retirement may count both the lease and the row, never neither;
- retirement commits a mark *then* counts committed references and live leases in one
  statement (``portal.encryption.rotation.retire``), and refuses if there is any.

Whichever of the two writes commits second, its reader sees the other's write: either the
wrapper sees the mark and avoids the KEK, or retirement sees the lease (or, once the upload
committed, its row) and refuses. A lease whose owner died expires after ``lifetime``
(``PORTAL_KEY_LEASE_HOURS``, far beyond the longest transfer) and is then ignored; until
then retirement refuses, which is the safe direction.

On SQLite the caller's own transaction is the lease: every transaction there holds the
database's single write lock from its first statement to its commit (``BEGIN IMMEDIATE``,
``portal.db``), so a retirement can neither commit its mark nor count between a wrap done
inside that transaction and its commit. A lease row written through a second connection
would wait for that very lock; ``acquire`` checks the marks in the caller's transaction
instead and returns a lease without a row.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crypto import Keyring, KeyringError
from portal.db import utcnow
from portal.encryption.models import KekLease, KekRetirement

log = logging.getLogger(__name__)
lifetime = timedelta(hours=24)
_ATTEMPTS = 3


class KeyRetiring(KeyringError):
    """The only KEK this process can wrap under is marked for retirement."""


class LeaseExpired(KeyringError):
    """The wrap took longer than the lease lifetime: retirement may no longer have seen it."""


@dataclass(frozen=True)
class Lease:
    kek_id: str
    id: int | None  # None: the caller's SQLite transaction holds the write lock (see above)


def configure(hours: int) -> None:
    global lifetime
    lifetime = timedelta(hours=hours)


def engine_of(conn) -> Engine:
    """The engine behind a Session or Connection: leases and marks use connections of their own."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn.engine
    if not isinstance(bind, Engine):
        raise TypeError("a session bound to an engine is needed")
    return bind


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def take(engine: Engine, kek_id: str, purpose: str) -> Lease:
    """Commit a lease on ``kek_id`` in a transaction of its own."""
    now = utcnow()
    with engine.begin() as c:
        lease_id = c.execute(insert(KekLease).values(kek_id=kek_id, purpose=purpose[:32], holder=_holder(),
                                                     taken_at=now, expires_at=now + lifetime)
                             .returning(KekLease.id)).scalar_one()
    return Lease(kek_id, lease_id)


def drop(engine: Engine, lease: Lease | None) -> None:
    """Give a lease back after a failure, in a transaction of its own. A lease the failing
    transaction already deleted stays locked by it (and comes back when it rolls back): it is
    skipped rather than waited for, and expires."""
    if lease is None or lease.id is None:
        return
    with engine.begin() as c:
        target = select(KekLease.id).where(KekLease.id == lease.id)
        if c.dialect.name == "postgresql":
            target = target.with_for_update(skip_locked=True)
        c.execute(delete(KekLease).where(KekLease.id.in_(target)))


def retiring(conn) -> set[str]:
    return set(conn.execute(select(KekRetirement.kek_id)).scalars())


def acquire(conn, keyring: Keyring, purpose: str) -> Lease:
    """A lease on the active KEK that retirement is bound to see (module docstring).
    ``conn``: the Session or Connection whose transaction will store the wrapped key."""
    engine = engine_of(conn)
    if engine.dialect.name == "sqlite":
        if isinstance(conn, Session):
            conn.connection()  # begins the transaction, and with it holds the write lock
        kek_id = keyring.active_id
        if kek_id in retiring(conn):
            raise KeyRetiring(f"{kek_id} is marked for retirement and is still the active key; rotate first")
        return Lease(kek_id, None)
    for _ in range(_ATTEMPTS):
        kek_id = keyring.active_id  # a FileKeyring re-reads its file when it changed
        lease = take(engine, kek_id, purpose)
        with engine.connect() as c:
            marked = kek_id in retiring(c)
            c.rollback()
        if not marked:
            return lease
        drop(engine, lease)
    raise KeyRetiring(f"{kek_id} is marked for retirement and is still the active key; rotate first")


def wrap(conn, keyring: Keyring, dek: bytes, purpose: str) -> tuple[Lease, str, bytes]:
    """Wrap a new data key under a leased KEK: ``(lease, kek_id, wrapped)``. The caller stores
    the wrapped key and calls ``release`` in the same transaction, or ``drop`` on failure."""
    for _ in range(_ATTEMPTS):
        lease = acquire(conn, keyring, purpose)
        kek_id, wrapped = keyring.wrap(dek)
        if kek_id == lease.kek_id:
            return lease, kek_id, wrapped
        drop(engine_of(conn), lease)  # rotated in between: lease the new active key
    raise KeyringError("the keyring's active key kept changing while wrapping a data key; try again")


def check(lease: Lease, kek_id: str) -> None:
    """For a caller that wraps several keys under one lease (rewrap): each wrap must have used
    the leased KEK."""
    if kek_id != lease.kek_id:
        raise KeyringError(f"the active key changed from {lease.kek_id} to {kek_id} while wrapping")


def release(conn, lease: Lease | None) -> None:
    """In the transaction that stores the wrapped key, before it commits: refuse if the lease
    has expired (retirement no longer counts it). A Session's lease is dropped, through a
    connection of its own, once that transaction has ended either way; a Connection's lease is
    deleted in the transaction itself."""
    if lease is None or lease.id is None:
        return
    live = (KekLease.id == lease.id, KekLease.expires_at > utcnow())
    if isinstance(conn, Session):
        if conn.execute(select(KekLease.id).where(*live)).first() is None:
            raise LeaseExpired(f"the lease on {lease.kek_id} expired before the data key was stored")
        _drop_when_done(conn, lease)
        return
    if conn.execute(delete(KekLease).where(*live)).rowcount != 1:
        raise LeaseExpired(f"the lease on {lease.kek_id} expired before the data key was stored")


def _drop_when_done(session: Session, lease: Lease) -> None:
    # Not deleted inside the transaction: a caller that fails afterwards gives the lease back
    # before its rollback (UploadSink.abort), and a row it had deleted would be locked by it.
    session.info.setdefault("kek_leases", []).append(lease)
    if session.info.get("kek_lease_hooks"):
        return
    session.info["kek_lease_hooks"] = True
    engine = engine_of(session)

    def ended(s: Session, *_args) -> None:
        for held in s.info.pop("kek_leases", []):
            try:
                drop(engine, held)
            except Exception:  # it expires; the transaction's outcome is what matters
                log.exception("could not drop the lease on %s", held.kek_id)

    event.listen(session, "after_commit", ended)
    event.listen(session, "after_rollback", ended)


def live(conn, *, now: datetime | None = None) -> list:
    """The leases in flight: rows with kek_id, purpose, holder, taken_at, expires_at."""
    return list(conn.execute(select(KekLease.id, KekLease.kek_id, KekLease.purpose, KekLease.holder,
                                    KekLease.taken_at, KekLease.expires_at)
                             .where(KekLease.expires_at > (now or utcnow()))
                             .order_by(KekLease.taken_at, KekLease.id)).all())


def purge_expired(engine: Engine) -> int:
    with engine.begin() as c:
        return c.execute(delete(KekLease).where(KekLease.expires_at <= utcnow())).rowcount


def mark_retiring(engine: Engine, kek_id: str) -> None:
    """Commit the mark (a transaction of its own) before anything is counted."""
    try:
        with engine.begin() as c:
            if c.execute(select(KekRetirement.kek_id).where(KekRetirement.kek_id == kek_id)).first() is None:
                c.execute(insert(KekRetirement).values(kek_id=kek_id, marked_at=utcnow()))
    except IntegrityError:
        pass  # another `keys retire` marked it at the same moment: marked either way


def mark_retired(engine: Engine, kek_id: str) -> None:
    with engine.begin() as c:
        c.execute(update(KekRetirement).where(KekRetirement.kek_id == kek_id).values(retired_at=utcnow()))


def marks(conn) -> dict[str, datetime | None]:
    """Every KEK marked for retirement, with when it was retired (None: not yet)."""
    return dict(conn.execute(select(KekRetirement.kek_id, KekRetirement.retired_at)).all())
