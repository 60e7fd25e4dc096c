"""Key rotation: a new active KEK, a resumable and idempotent re-wrap of every data key
(attachment DEKs, field data keys, inform notices' DEKs) without touching any ciphertext, and
retirement of a KEK only when nothing refers to it.

It reads every table that holds a wrapped data key, across packages (attachments, informs),
so it sits beside ``portal.cli`` above all of them rather than inside one.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crypto import Keyring, KeyInUse
from portal.attachments.models import Attachment, DataKey
from portal.informs.models import Inform


def _wrapped_columns():
    """Every (model, kek column, wrapped-key column) that holds a data key."""
    return [(Attachment, Attachment.kek_id, Attachment.wrapped_dek), (DataKey, DataKey.kek_id, DataKey.wrapped),
            (Inform, Inform.notice_kek_id, Inform.notice_wrapped_dek)]


def usage(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model, kek, _w in _wrapped_columns():
        for kek_id, n in session.execute(select(kek, func.count()).where(kek.is_not(None)).group_by(kek)).all():
            counts[kek_id] = counts.get(kek_id, 0) + n
    return counts


def pending(session: Session, active: str) -> int:
    return sum(n for kek, n in usage(session).items() if kek != active)


def rewrap(session: Session, keyring: Keyring, *, batch: int = 200,
           progress: Callable[[int], None] | None = None) -> int:
    """Move every data key to the active KEK, one committed batch at a time, so an
    interrupted run resumes where it stopped and a finished run does nothing. Each row is
    updated only if it still has the wrapping that was read (safe while the portal serves)."""
    active = keyring.active_id
    moved = 0
    for model, kek, col in _wrapped_columns():
        while True:
            rows = session.execute(select(model.id, kek, col).where(kek.is_not(None), kek != active)
                                   .order_by(model.id).limit(batch)).all()
            if not rows:
                break
            for row_id, kek_id, wrapped in rows:
                dek = keyring.unwrap(kek_id, bytes(wrapped))
                new_kek, new_wrapped = keyring.wrap(dek)
                session.execute(update(model).where(model.id == row_id, kek == kek_id)
                                .values({kek.key: new_kek, col.key: new_wrapped}))
                moved += 1
            session.commit()
            if progress:
                progress(len(rows))
    return moved


def retire(session: Session, keyring: Keyring, kek_id: str) -> None:
    if kek_id == keyring.active_id:
        raise KeyInUse(f"{kek_id} is the active key; rotate first")
    n = usage(session).get(kek_id, 0)
    if n:
        raise KeyInUse(f"{kek_id} still wraps {n} data keys; run `portal keys rewrap` first")
    keyring.retire(kek_id)
