"""The one list of everything encrypted (DESIGN §7): every table that holds a wrapped data
key, every table whose rows name an encrypted blob, every sealed column. Rotation, retirement,
``portal blobs check`` and backup read it; nothing else keeps its own list.

It is filled by registration, so it sits below the models that use it: each models module
registers its holders when it is imported, and ``portal.models`` imports them all (the app
factory, the CLI and Alembic import that), so a reader sees the complete list.

Registering (in a models module, after the class)::

    registry.wrapped_keys("data_keys", DataKey, kek=DataKey.kek_id, wrapped=DataKey.wrapped)
    registry.blobs("attachments", Attachment, key=Attachment.blob_key, kek=Attachment.kek_id,
                   wrapped=Attachment.wrapped_dek, uid=Attachment.uid, size=Attachment.size)
    registry.sealed_column("reports", "title")      # the sealed-field type does this

A blob holder is also a wrapped-key holder (its rows' DEKs are wrapped by a KEK). ``uid`` is
the column whose value, UTF-8 encoded, is the stream's attachment id (crypto.stream binds it
into the header, so a blob moved to another row fails). ``size`` (optional) is the plaintext
size, which lets the deep check tell a truncated blob from a tampered one. Rows whose blob
key or KEK column is NULL (an inform not yet issued) hold nothing.

Reading (stable API; ``conn`` is a Session or a Connection)::

    holders() -> list[Holder]            every wrapped-key holder, blob holders included
    blob_holders() -> list[BlobHolder]
    sealed_columns() -> list[tuple[str, str]]       (table, column)
    kek_usage(conn) -> dict[kek_id, int]            committed rows + wraps in flight
    kek_usage_by_holder(conn) -> dict[kek_id, dict[label, int]]   the same, per holder;
                                          wraps in flight under the label IN_FLIGHT
    blob_refs(conn) -> Iterator[BlobRef]            every row that names a blob
    blob_keys_select() -> Select                    the blob keys rows name (for NOT IN)

``kek_usage`` and ``kek_usage_by_holder`` are one SQL statement, hence one snapshot: a wrap
that commits while they run is counted either as its lease or as its row, never as neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import Select, String, func, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute

from portal.db import utcnow
from portal.encryption.models import KekLease

IN_FLIGHT = "in flight"


@dataclass(frozen=True)
class Holder:
    """A table whose rows hold a data key wrapped by a KEK."""

    label: str
    model: Any
    kek: InstrumentedAttribute
    wrapped: InstrumentedAttribute

    @property
    def table(self) -> str:
        return self.model.__table__.name

    @property
    def id(self) -> InstrumentedAttribute:
        return self.model.id


@dataclass(frozen=True)
class BlobHolder(Holder):
    """A table whose rows name an encrypted blob in the blob store."""

    key: InstrumentedAttribute = None  # type: ignore[assignment]
    uid: InstrumentedAttribute = None  # type: ignore[assignment]
    size: InstrumentedAttribute | None = None


@dataclass(frozen=True)
class BlobRef:
    holder: str
    row_id: int
    blob_key: str
    kek_id: str
    wrapped_dek: bytes
    uid: str
    size: int | None

    @property
    def associated_data(self) -> bytes:
        """The attachment id the stream was sealed with."""
        return self.uid.encode()


_holders: dict[str, Holder] = {}
_sealed: list[tuple[str, str]] = []


def _register(holder: Holder) -> None:
    old = _holders.get(holder.label)
    if old is not None and old.model is not holder.model:
        raise ValueError(f"{holder.label!r} is already registered for {old.model.__name__}")
    _holders[holder.label] = holder


def wrapped_keys(label: str, model, *, kek: InstrumentedAttribute, wrapped: InstrumentedAttribute) -> None:
    _register(Holder(label, model, kek, wrapped))


def blobs(label: str, model, *, key: InstrumentedAttribute, kek: InstrumentedAttribute,
          wrapped: InstrumentedAttribute, uid: InstrumentedAttribute,
          size: InstrumentedAttribute | None = None) -> None:
    _register(BlobHolder(label, model, kek, wrapped, key=key, uid=uid, size=size))


def sealed_column(table: str, column: str) -> None:
    if (table, column) not in _sealed:
        _sealed.append((table, column))


def holders() -> list[Holder]:
    return list(_holders.values())


def blob_holders() -> list[BlobHolder]:
    return [h for h in _holders.values() if isinstance(h, BlobHolder)]


def sealed_columns() -> list[tuple[str, str]]:
    return list(_sealed)


def kek_usage_by_holder(conn, *, now: datetime | None = None) -> dict[str, dict[str, int]]:
    now = now or utcnow()
    parts = [select(literal(h.label, String()).label("holder"), h.kek.label("kek_id"), func.count().label("n"))
             .where(h.kek.is_not(None), h.kek != "").group_by(h.kek) for h in holders()]
    parts.append(select(literal(IN_FLIGHT, String()).label("holder"), KekLease.kek_id.label("kek_id"),
                        func.count().label("n")).where(KekLease.expires_at > now).group_by(KekLease.kek_id))
    out: dict[str, dict[str, int]] = {}
    for label, kek_id, n in conn.execute(union_all(*parts)).all():
        out.setdefault(kek_id, {})[label] = out.get(kek_id, {}).get(label, 0) + n
    return out


def kek_usage(conn, *, now: datetime | None = None) -> dict[str, int]:
    return {kek: sum(by.values()) for kek, by in kek_usage_by_holder(conn, now=now).items()}


def blob_refs(conn) -> Iterator[BlobRef]:
    for h in blob_holders():
        size = h.size if h.size is not None else literal(None)
        stmt = (select(h.id, h.key, h.kek, h.wrapped, h.uid, size)
                .where(h.key.is_not(None)).order_by(h.id))
        for row_id, key, kek_id, wrapped, uid, n in conn.execute(stmt):
            yield BlobRef(h.label, row_id, key, kek_id, bytes(wrapped) if wrapped is not None else b"", uid, n)


def blob_keys_select() -> Select:
    return union_all(*[select(h.key.label("key")).where(h.key.is_not(None)) for h in blob_holders()]).subquery().select()
