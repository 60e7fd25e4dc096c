"""Key rotation (DESIGN §7): a new active KEK, a resumable and idempotent re-wrap of every
data key the registry lists without touching any ciphertext, and retirement of a KEK only
when nothing refers to it, committed or in flight (``portal.encryption.leases``).
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crypto import KeyInUse, Keyring, UnknownKey
from portal.encryption import leases, registry


def usage(conn) -> dict[str, int]:
    """Per KEK: the data keys committed under it plus the wraps in flight."""
    return registry.kek_usage(conn)


def pending(conn, active: str) -> int:
    """Committed data keys not yet under ``active``."""
    return sum(n for kek, by in registry.kek_usage_by_holder(conn).items() if kek != active
               for label, n in by.items() if label != registry.IN_FLIGHT)


def rewrap(session: Session, keyring: Keyring, *, batch: int = 200,
           progress: Callable[[int], None] | None = None) -> int:
    """Move every data key to the active KEK, one committed batch at a time, so an
    interrupted run resumes where it stopped and a finished run does nothing. Each row is
    updated only if it still has the wrapping that was read (safe while the portal serves).
    Each batch wraps under a lease like any other wrap, so a KEK being retired meanwhile is
    never the target."""
    moved = 0
    engine = leases.engine_of(session)
    for h in registry.holders():
        while True:
            lease = leases.acquire(session, keyring, "rewrap")
            try:
                rows = session.execute(select(h.id, h.kek, h.wrapped)
                                       .where(h.kek.is_not(None), h.kek != "", h.kek != lease.kek_id)
                                       .order_by(h.id).limit(batch)).all()
                for row_id, kek_id, wrapped in rows:
                    dek = keyring.unwrap(kek_id, bytes(wrapped))
                    new_kek, new_wrapped = keyring.wrap(dek)
                    leases.check(lease, new_kek)
                    session.execute(update(h.model).where(h.id == row_id, h.kek == kek_id)
                                    .values({h.kek.key: new_kek, h.wrapped.key: new_wrapped})
                                    .execution_options(synchronize_session=False))
                leases.release(session, lease)
                session.commit()
            except BaseException:
                session.rollback()
                leases.drop(engine, lease)
                raise
            if not rows:
                break
            moved += len(rows)
            if progress:
                progress(len(rows))
    return moved


def retire(session: Session, keyring: Keyring, kek_id: str) -> None:
    """Mark ``kek_id`` as retiring (committed), then count what refers to it, committed or in
    flight, in one statement; remove it from the keyring only if nothing does. Runs in
    transactions of its own: ``session`` must have nothing pending."""
    if kek_id not in keyring.ids():
        raise UnknownKey(f"no KEK {kek_id} in the keyring")
    if kek_id == keyring.active_id:
        raise KeyInUse(f"{kek_id} is the active key; rotate first")
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("retire runs in transactions of its own; commit or roll back first")
    # No transaction of ours may hold SQLite's write lock while the mark waits for it.
    session.rollback()
    engine = leases.engine_of(session)
    leases.mark_retiring(engine, kek_id)
    with engine.connect() as c:
        refs = registry.kek_usage_by_holder(c).get(kek_id, {})
        c.rollback()
    if refs:
        in_flight = refs.pop(registry.IN_FLIGHT, 0)
        held = ", ".join(f"{label} {n}" for label, n in sorted(refs.items()))
        parts = []
        if refs:
            parts.append(f"still wraps {sum(refs.values())} data keys ({held}); run `portal keys rewrap` first")
        if in_flight:
            parts.append(f"{in_flight} wraps under it are in flight (uploads not yet committed); "
                         "retry once they have finished")
        raise KeyInUse(f"{kek_id} " + "; ".join(parts))
    if kek_id == keyring.active_id:  # a keyring file put back meanwhile
        raise KeyInUse(f"{kek_id} is the active key; rotate first")
    keyring.retire(kek_id)
    leases.mark_retired(engine, kek_id)
