"""Sealed fields (DESIGN §7): short text columns stored as AES-256-GCM ciphertext under a
field data key, bound to their row.

A model declares the stored bytes and the text the services use::

    _title: Mapped[bytes] = mapped_column("title", Ciphertext())
    title = Sealed[str]("_title", default="")

The associated data names the table, the row's primary key and the column
(``row_aad``), so a ciphertext copied to another row or another column does not decrypt:
reading it raises ``SealedFieldError`` and the request ends on the portal's error page.
A column type cannot see its row, hence the descriptor: it seals when the row's key is
known and opens lazily with the key of the row it was loaded from. A new row's key is known
only after its INSERT, so the INSERT carries an empty placeholder and the ciphertext follows
in an UPDATE of the same flush (``_after_insert``); the plaintext never reaches the database.
``Ciphertext`` refuses text, so a Core statement cannot write a sealed column in the clear.
Each ``Sealed`` registers its column with ``portal.encryption.registry`` when its class is
defined.

Queries cannot filter or sort on a sealed column; ``Report.title`` at class level is the
descriptor, not a column, so such a query fails when it is written. Lists select the stored
bytes with the row's id and open them (``Sealed.open``).

The cipher is process-wide: the app registers the keyring and the database URL at start-up
(``configure``). Field data keys live in ``data_keys``, wrapped by a KEK; ``portal init``
creates the first one. Keys are read through a separate plain connection, so no transaction
of the caller is touched (and SQLite's write lock is never waited on).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar, overload

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.types import LargeBinary, TypeDecorator

from crypto import DecryptionError, FormatError, Keyring, new_dek, seal, unseal
from portal.encryption import leases, registry

FIELD_PURPOSE = "field"
KEY_ID_SIZE = 4  # the field data key's id, big-endian, before the sealed blob
# What a new row's INSERT carries until its key is known (never a valid ciphertext).
PLACEHOLDER = b""


class SealedFieldError(Exception):
    """A stored ciphertext does not open for the row and column it was read from: moved,
    tampered with, or sealed under a data key the database no longer holds."""


def row_aad(table: str, pk: object, column: str) -> bytes:
    """The associated data of a sealed value: table, primary key and column."""
    return f"{table}/{pk}/{column}".encode()


class FieldCipher:
    def __init__(self, keyring: Keyring, url: str):
        self.keyring = keyring
        self.url = url
        self._engine: sa.Engine | None = None
        self._keys: dict[int, bytes] = {}
        self._current: int | None = None
        self._lock = threading.Lock()

    def _reader(self) -> sa.Engine:
        if self._engine is None:
            url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
            self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        return self._engine

    def _load(self, key_id: int | None) -> tuple[int, bytes]:
        with self._reader().connect() as conn:
            if key_id is None:
                row = conn.execute(sa.text(
                    "SELECT id, kek_id, wrapped FROM data_keys WHERE purpose = :p ORDER BY id DESC LIMIT 1"),
                    {"p": FIELD_PURPOSE}).first()
            else:
                row = conn.execute(sa.text("SELECT id, kek_id, wrapped FROM data_keys WHERE id = :i"),
                                   {"i": key_id}).first()
            conn.rollback()
        if row is None:
            if key_id is None:
                raise RuntimeError("no field data key: run `portal init`")
            raise SealedFieldError(f"field data key {key_id} is not in data_keys")
        return row[0], self.keyring.unwrap(row[1], bytes(row[2]))

    def _key(self, key_id: int | None) -> tuple[int, bytes]:
        with self._lock:
            if key_id is None and self._current is not None:
                return self._current, self._keys[self._current]
            if key_id is not None and key_id in self._keys:
                return key_id, self._keys[key_id]
        kid, dek = self._load(key_id)
        with self._lock:
            self._keys[kid] = dek
            if key_id is None:
                self._current = kid
        return kid, dek

    def encrypt(self, plaintext: str, aad: bytes) -> bytes:
        kid, dek = self._key(None)
        return kid.to_bytes(KEY_ID_SIZE, "big") + seal(dek, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> str:
        if len(blob) <= KEY_ID_SIZE:
            raise FormatError("sealed field too short")
        _kid, dek = self._key(int.from_bytes(blob[:KEY_ID_SIZE], "big"))
        return unseal(dek, blob[KEY_ID_SIZE:], aad)


_cipher: FieldCipher | None = None


def configure(keyring: Keyring, url: str) -> None:
    global _cipher
    if _cipher is None or _cipher.url != url or _cipher.keyring is not keyring:
        _cipher = FieldCipher(keyring, url)


def reset() -> None:
    """Forget cached keys (tests, and after restoring a database from a backup)."""
    global _cipher
    _cipher = None


def cipher() -> FieldCipher:
    if _cipher is None:
        raise RuntimeError("field encryption is not configured")
    return _cipher


def ensure_field_key(conn: sa.Connection, keyring: Keyring) -> bool:
    """Create the first field data key if there is none (``portal init``)."""
    exists = conn.execute(sa.text("SELECT 1 FROM data_keys WHERE purpose = :p LIMIT 1"), {"p": FIELD_PURPOSE}).first()
    if exists:
        return False
    # Leased like every other new data key, so a retirement running meanwhile cannot drop its KEK.
    lease, kek_id, wrapped = leases.wrap(conn, keyring, new_dek(), "field_key")
    try:
        conn.execute(sa.text("INSERT INTO data_keys (purpose, kek_id, wrapped, created_at) VALUES (:p, :k, :w, :c)"),
                     {"p": FIELD_PURPOSE, "k": kek_id, "w": wrapped, "c": datetime.now(timezone.utc)})
        leases.release(conn, lease)
    except BaseException:
        leases.drop(leases.engine_of(conn), lease)
        raise
    return True


class Ciphertext(TypeDecorator):
    """The column type of every sealed column: bytes in, bytes out, and never text, so no
    statement writes a sealed column in the clear by mistake."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise TypeError("a sealed column stores ciphertext only: set the model's sealed attribute")

    def process_result_value(self, value, dialect):
        return None if value is None else bytes(value)


@dataclass(frozen=True)
class SealedColumn:
    """Where a sealed field is stored."""

    table: str
    column: str
    primary_key: str
    nullable: bool


T = TypeVar("T")  # str, or str | None for a nullable column


class Sealed(Generic[T]):
    """The plaintext side of a sealed column (see the module docstring). ``storage`` names
    the mapped ``Ciphertext`` attribute; ``default`` is what a new row holds if nothing was set."""

    def __init__(self, storage: str, *, default: str | None = None) -> None:
        self.storage = storage
        self.default = default
        self._cache_key = f"_sealed_{storage}"
        self._where: SealedColumn | None = None
        self._owner: type | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        # Called once the class body is complete, before declarative maps it: the table and
        # column names are read from the class body itself.
        self._owner = owner
        column = owner.__dict__[self.storage].column
        registry.sealed_column(owner.__dict__["__tablename__"], column.name or self.storage)

    @property
    def where(self) -> SealedColumn:
        if self._where is None:
            mapper = sa.inspect(self._owner)
            assert mapper is not None and len(mapper.primary_key) == 1, "a sealed row needs a one-column key"
            col = mapper.get_property(self.storage).columns[0]
            self._where = SealedColumn(col.table.name, col.name, mapper.primary_key[0].name, bool(col.nullable))
        return self._where

    # -- the ciphertext of one row, for code that reads or writes rows without the ORM

    def seal(self, pk: object, plaintext: str) -> bytes:
        w = self.where
        return cipher().encrypt(plaintext, row_aad(w.table, pk, w.column))

    def open(self, pk: object, ciphertext: bytes | None) -> str | None:
        if ciphertext is None:
            return None
        w = self.where
        try:
            return cipher().decrypt(bytes(ciphertext), row_aad(w.table, pk, w.column))
        except (DecryptionError, FormatError) as exc:
            # Names the place, never a byte of content: the operator's log says what is damaged.
            raise SealedFieldError(f"{w.table}.{w.column} of row {pk} does not open ({exc})") from None

    # -- the instance attribute

    @overload
    def __get__(self, obj: None, owner: Any) -> Sealed[T]: ...

    @overload
    def __get__(self, obj: object, owner: Any) -> T: ...

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        d = obj.__dict__
        cached = d.get(self._cache_key)
        key = instance_state(obj).key
        if key is None:  # not yet in the database: the plaintext lives only here
            return cached[1] if cached is not None else self.default
        stored = getattr(obj, self.storage)  # loads a deferred or expired column
        if cached is not None and cached[0] == stored:
            return cached[1]
        value = self.open(key[1][0], stored)
        d[self._cache_key] = (stored, value)
        return value

    def __set__(self, obj: object, value: T) -> None:
        if value is None and not self.where.nullable:
            raise TypeError(f"{self.where.table}.{self.where.column} cannot be None")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{self.where.table}.{self.where.column} holds text")
        d = obj.__dict__
        key = instance_state(obj).key
        if key is None:
            d[self._cache_key] = (None, value)
            return
        cached = d.get(self._cache_key)
        if cached is not None and cached[1] == value and cached[0] == d.get(self.storage, PLACEHOLDER):
            return  # unchanged: no new ciphertext, no UPDATE
        stored = self.seal(key[1][0], value) if isinstance(value, str) else None
        setattr(obj, self.storage, stored)
        d[self._cache_key] = (stored, value)

    def _plaintext_of_new(self, obj: object) -> str | None:
        cached = obj.__dict__.get(self._cache_key)
        return cached[1] if cached is not None else self.default


_BY_CLASS: dict[type, tuple[Sealed[Any], ...]] = {}


def sealed_fields(cls: type) -> tuple[Sealed[Any], ...]:
    """The sealed fields of a mapped class (its own and inherited)."""
    fields = _BY_CLASS.get(cls)
    if fields is None:
        found = {name: v for klass in reversed(cls.__mro__) for name, v in vars(klass).items()
                 if isinstance(v, Sealed)}
        fields = _BY_CLASS[cls] = tuple(found.values())
    return fields


@event.listens_for(Mapper, "before_insert")
def _before_insert(mapper: Mapper, connection: sa.Connection, target: object) -> None:
    fields = sealed_fields(type(target))
    if not fields:
        return
    pk = mapper.primary_key_from_instance(target)[0]
    for f in fields:
        plaintext = f._plaintext_of_new(target)
        if plaintext is None:
            stored = None
        elif pk is not None:  # a key chosen by the caller: sealed in the INSERT itself
            stored = f.seal(pk, plaintext)
        else:
            stored = PLACEHOLDER
        setattr(target, f.storage, stored)
        target.__dict__[f._cache_key] = (stored, plaintext)


@event.listens_for(Mapper, "after_insert")
def _after_insert(mapper: Mapper, connection: sa.Connection, target: object) -> None:
    fields = sealed_fields(type(target))
    if not fields:
        return
    pk = mapper.primary_key_from_instance(target)[0]
    values: dict[str, bytes] = {}
    for f in fields:
        stored, plaintext = target.__dict__[f._cache_key]
        if stored is PLACEHOLDER and plaintext is not None:
            stored = f.seal(pk, plaintext)
            values[f.where.column] = stored
            set_committed_value(target, f.storage, stored)
            target.__dict__[f._cache_key] = (stored, plaintext)
    if values:
        table = mapper.local_table
        assert isinstance(table, sa.Table)
        connection.execute(table.update().where(table.c[fields[0].where.primary_key] == pk).values(values))
