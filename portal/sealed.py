"""Transparent field encryption (DESIGN §7): ``Sealed("reports.draft")`` is a column type
that stores AES-256-GCM ciphertext under a field data key and gives the services plain text.

The cipher is process-wide: the app registers the keyring and the database URL at start-up
(``configure``). Field data keys live in ``data_keys``, wrapped by a KEK; ``portal init``
creates the first one. Keys are read through a separate plain connection, so no transaction
of the caller is touched (and SQLite's write lock is never waited on).
"""
from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.types import LargeBinary, TypeDecorator

from crypto import Keyring, new_dek, seal, unseal

FIELD_PURPOSE = "field"


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
            raise RuntimeError("no field data key: run `portal init`")
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
        return kid.to_bytes(4, "big") + seal(dek, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> str:
        _kid, dek = self._key(int.from_bytes(blob[:4], "big"))
        return unseal(dek, blob[4:], aad)


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
    from datetime import datetime, timezone

    kek_id, wrapped = keyring.wrap(new_dek())
    conn.execute(sa.text("INSERT INTO data_keys (purpose, kek_id, wrapped, created_at) VALUES (:p, :k, :w, :c)"),
                 {"p": FIELD_PURPOSE, "k": kek_id, "w": wrapped, "c": datetime.now(timezone.utc)})
    return True


class Sealed(TypeDecorator):
    """A text column stored encrypted; ``aad`` names the column so a value cannot be moved
    to another column and still decrypt."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, aad: str):
        super().__init__()
        self.aad = aad

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return cipher().encrypt(value, self.aad.encode())

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return cipher().decrypt(bytes(value), self.aad.encode())
