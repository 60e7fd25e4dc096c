"""sealed fields bound to their row; the counterparty's name sealed

Revision ID: 0012
Revises: 0011

Every sealed value is opened with its old associated data (``table.column``) and sealed
again, under the same field data key, with the table, the row's primary key and the column
(``table/pk/column``), so a ciphertext moved to another row no longer opens.
``reports.title`` (the counterparty's name, in clear until now) becomes a sealed column: each
name is sealed into a new column while the clear one is blanked in the same UPDATE, then the
clear column is dropped and the new one takes its name.

The keyring comes from the caller (``portal db upgrade`` and ``portal init`` pass the
instance's; ``config.attributes["keyring"]``): a database holding sealed values cannot be
migrated without it, and the migration says so. Rows are read in key order, ``BATCH`` at a
time, so memory stays constant; it all runs in the migration's one transaction, so a failure
leaves nothing half re-sealed.

``reports`` is changed with ALTER TABLE on SQLite too (no batch rebuild), so the report tally
triggers of 0008 stay in place. SQLite's ``secure_delete`` zeroes the space the clear names
leave. On PostgreSQL the old row versions stay in the table's file and in pg_wal until
VACUUM and checkpoints reclaim them: run ``VACUUM FULL reports`` after upgrading.

The associated-data formats are written out here rather than imported, so a later change to
``portal.encryption.sealed`` cannot change what this migration did.
"""
from __future__ import annotations

from typing import Callable, Iterator

from alembic import context, op
import sqlalchemy as sa

from crypto import seal, unseal


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Every sealed column before this revision (table, column); all keyed by ``id``.
SEALED = (("users", "totp_secret"), ("reports", "draft"), ("report_versions", "content"), ("messages", "body"),
          ("informs", "reasons"), ("informs", "conditions"), ("informs", "internal_rationale"))
BATCH = 500
KEY_ID_SIZE = 4


def _column_aad(table: str, _pk: int, column: str) -> bytes:
    return f"{table}.{column}".encode()


def _row_aad(table: str, pk: int, column: str) -> bytes:
    return f"{table}/{pk}/{column}".encode()


class _FieldKeys:
    """The field data keys, unwrapped on first use with the caller's keyring."""

    def __init__(self, bind: sa.Connection):
        self.bind = bind
        self.keys: dict[int, bytes] = {}

    def _keyring(self):
        keyring = context.config.attributes.get("keyring") if context.config is not None else None
        if keyring is None:
            raise RuntimeError("migration 0012 re-seals the encrypted fields and needs the keyring: "
                               "run `portal db upgrade` (or `portal init`) with the instance's keyring in place")
        return keyring

    def key(self, key_id: int) -> bytes:
        if key_id not in self.keys:
            row = self.bind.execute(sa.text("SELECT kek_id, wrapped FROM data_keys WHERE id = :i"),
                                    {"i": key_id}).first()
            if row is None:
                raise RuntimeError(f"a sealed value names field data key {key_id}, which data_keys does not hold")
            self.keys[key_id] = self._keyring().unwrap(row[0], bytes(row[1]))
        return self.keys[key_id]

    def newest(self) -> int:
        key_id = self.bind.execute(sa.text(
            "SELECT id FROM data_keys WHERE purpose = 'field' ORDER BY id DESC LIMIT 1")).scalar()
        if key_id is None:
            raise RuntimeError("no field data key to seal with: the database was never initialised (`portal init`)")
        return key_id

    def open(self, blob: bytes, aad: bytes) -> str:
        blob = bytes(blob)
        return unseal(self.key(int.from_bytes(blob[:KEY_ID_SIZE], "big")), blob[KEY_ID_SIZE:], aad)

    def seal(self, key_id: int, plaintext: str, aad: bytes) -> bytes:
        return key_id.to_bytes(KEY_ID_SIZE, "big") + seal(self.key(key_id), plaintext, aad)


def _rows(bind: sa.Connection, table: str, column: str) -> Iterator[list]:
    """The non-null values of a column, BATCH rows at a time in key order."""
    last = 0
    while True:
        rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE id > :last AND {column} IS NOT NULL"
                                    f" ORDER BY id LIMIT {BATCH}"), {"last": last}).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _reseal(bind: sa.Connection, keys: _FieldKeys, old: Callable[[str, int, str], bytes],
            new: Callable[[str, int, str], bytes]) -> None:
    """Each sealed value opened with ``old`` associated data and sealed with ``new``, under
    the data key it was sealed with."""
    for table, column in SEALED:
        for rows in _rows(bind, table, column):
            values = []
            for pk, blob in rows:
                key_id = int.from_bytes(bytes(blob)[:KEY_ID_SIZE], "big")
                values.append({"id": pk, "v": keys.seal(key_id, keys.open(blob, old(table, pk, column)),
                                                         new(table, pk, column))})
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), values)


def _swap_title(bind: sa.Connection, new_type: sa.types.TypeEngine, default: str,
                convert: Callable[[int, object], object], blank: object) -> None:
    """Fill ``title_next`` from ``title`` row by row (blanking ``title`` in the same UPDATE),
    then drop ``title`` and rename ``title_next`` to it."""
    op.add_column("reports", sa.Column("title_next", new_type, nullable=False, server_default=sa.text(default)))
    for rows in _rows(bind, "reports", "title"):
        bind.execute(sa.text("UPDATE reports SET title_next = :v, title = :blank WHERE id = :id"),
                     [{"id": pk, "v": convert(pk, value), "blank": blank} for pk, value in rows])
    op.execute("ALTER TABLE reports DROP COLUMN title")
    op.execute("ALTER TABLE reports RENAME COLUMN title_next TO title")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE reports ALTER COLUMN title DROP DEFAULT")


def _secure_delete(bind: sa.Connection) -> None:
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("PRAGMA secure_delete = ON")


def upgrade() -> None:
    bind = op.get_bind()
    _secure_delete(bind)
    keys = _FieldKeys(bind)
    _reseal(bind, keys, _column_aad, _row_aad)
    newest: list[int] = []

    def sealed_title(pk: int, value: object) -> bytes:
        if not newest:
            newest.append(keys.newest())
        return keys.seal(newest[0], str(value), _row_aad("reports", pk, "title"))

    empty_blob = "x''" if bind.dialect.name == "sqlite" else "'\\x'::bytea"
    _swap_title(bind, sa.LargeBinary(), empty_blob, sealed_title, "")


def downgrade() -> None:
    bind = op.get_bind()
    _secure_delete(bind)
    keys = _FieldKeys(bind)

    def clear_title(pk: int, value: object) -> str:
        return keys.open(bytes(value), _row_aad("reports", pk, "title"))[:200]  # type: ignore[arg-type]

    _swap_title(bind, sa.String(length=200), "''", clear_title, b"")
    _reseal(bind, keys, _row_aad, _column_aad)
