"""Restoring a backup set into an empty database and an empty instance folder, and the checks
that prove the result whole.

Everything is verified before anything is written: the manifest's signature, every file's
size and SHA-256, nothing unlisted, the audit key in the set is the one that signed it, and
the target is empty. Then the files are placed (each new, 0600) and the database restored in
one transaction (PostgreSQL) or one rename (SQLite); a failure removes what was placed."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from sqlalchemy import Engine, select

import portal.models  # noqa: F401  (every holder and sealed column registered)
from sqlalchemy.orm import Session

from crypto import KeyringError, SigningKey, SigningKeyError
from portal.attachments.blobstore import BlobStore, DatabaseBlobStore, DirectoryBlobStore
from portal.audit import checkpoints
from portal.audit.trail import record
from portal.audit.verify import verify_chain
from portal.backup import database as dbb
from portal.backup import manifest as mf
from portal.config import Settings
from portal.db import Base
from portal.encryption import blobcheck, registry, sealed
from portal.encryption.opener import keyring_for


class RestoreError(Exception):
    """The set cannot be restored here; nothing was written."""


@dataclass
class Restored:
    manifest: dict
    manifest_sha256: str
    files: int
    blobs: int
    seconds: float


@dataclass
class Checked:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _targets(settings: Settings) -> dict[str, Path]:
    return {"keys/keyring.json": Path(str(settings.keyring_path)), "keys/audit-signing.pem": Path(str(settings.audit_key_path)),
            "keys/secret_key": Path(settings.instance_path) / "secret_key"}


def _empty_dir_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def verify_set(src: Path, keys_src: Path | None, public_key: bytes | None) -> tuple[dict, str, list[mf.Entry]]:
    """The set, authenticated and complete, or ``ManifestError``."""
    manifest, sha = mf.load(src, public_key=public_key)
    if manifest.get("keys_separately") and keys_src is None:
        raise mf.ManifestError("this set's keys were kept apart (--keys-separately): pass --keys DIR")
    listed = mf.entries(manifest)
    names = {e.path for e in listed}
    for needed in ("keys/keyring.json", "keys/audit-signing.pem", f"database.{_ext(manifest)}"):
        if needed not in names:
            raise mf.ManifestError(f"the set has no {needed}")
    mf.check_files(src, keys_src, listed)
    try:
        in_set = SigningKey.load(mf.root_of("keys/audit-signing.pem", src, keys_src))
    except SigningKeyError as exc:
        raise mf.ManifestError(f"the audit key in the set is not usable: {exc}") from None
    if in_set.key_id != manifest.get("key_id"):
        raise mf.ManifestError("the audit key in the set is not the one that signed the manifest")
    return manifest, sha, listed


def _ext(manifest: dict) -> str:
    return "sqlite" if manifest.get("database") == "sqlite" else "pgdump"


def check_target(settings: Settings, manifest: dict, *, pg_bin: str | None) -> None:
    url = str(settings.database_url)
    if dbb.kind(url) != manifest.get("database"):
        raise RestoreError(f"the set holds a {manifest.get('database')} database; PORTAL_DATABASE_URL is "
                           f"{dbb.kind(url)} (a restore does not convert between databases)")
    if settings.blob_store != manifest.get("blob_store"):
        raise RestoreError(f"the set's blobs are for PORTAL_BLOB_STORE={manifest.get('blob_store')}; "
                           f"this instance is configured with {settings.blob_store}")
    inst = Path(settings.instance_path)
    db_file = dbb.sqlite_path(url) if dbb.kind(url) == "sqlite" else None
    if inst.exists():
        extra = [p for p in inst.iterdir() if not (p == db_file and dbb.sqlite_is_empty(url))]
        if extra:
            raise RestoreError(f"{inst}: the instance folder is not empty ({extra[0].name}); "
                               "restore into a new instance folder")
    for path in [*_targets(settings).values(), Path(str(settings.blob_dir))]:
        if not _empty_dir_or_absent(path):
            raise RestoreError(f"{path}: already exists; restore into a new instance")
    if db_file is not None:
        if not dbb.sqlite_is_empty(url):
            raise RestoreError(f"{db_file}: the database is not empty; restore into a new database")
        return
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            empty, server = dbb.pg_is_empty(c), dbb.server_major(c)
            c.rollback()
    except sa.exc.OperationalError as exc:
        raise RestoreError(f"cannot reach the target database ({str(exc.orig).strip()}); "
                           "create it first (createdb NAME) and check PORTAL_DATABASE_URL") from None
    finally:
        engine.dispose()
    if not empty:
        raise RestoreError("the target database is not empty; restore into a new database (createdb NAME)")
    source = int((manifest.get("postgresql") or {}).get("server_major") or 0)
    if server < source:
        raise RestoreError(f"the set comes from PostgreSQL {source}; the target server is {server} (restore into "
                           f"PostgreSQL {source} or later)")
    try:
        dbb.check_same_major(dbb.tool("pg_restore", pg_bin), server)
    except dbb.DatabaseError as exc:
        raise RestoreError(str(exc)) from None


def restore(settings: Settings, src: Path, *, keys_src: Path | None = None, public_key: bytes | None = None,
            pg_bin: str | None = None, log: Callable[[str], None] = lambda _m: None) -> Restored:
    t0 = time.perf_counter()
    src = Path(src)
    try:
        manifest, sha, listed = verify_set(src, Path(keys_src) if keys_src else None, public_key)
    except mf.ManifestError as exc:
        raise RestoreError(f"the set is refused: {exc}") from None
    log(f"set verified: {len(listed)} files, manifest sha256 {sha}, signed by audit key {manifest['key_id']}")
    check_target(settings, manifest, pg_bin=pg_bin)
    url = str(settings.database_url)
    created: list[Path] = []
    try:
        inst = Path(settings.instance_path)
        if not inst.exists():
            inst.mkdir(mode=0o700, parents=True)
            created.append(inst)
        os.chmod(inst, 0o700)
        for entry in listed:
            source = mf.root_of(entry.path, src, Path(keys_src) if keys_src else None)
            target = _targets(settings).get(entry.path)
            if target is not None:
                _place_file(source, target, created)
        blobs = _place_blobs(src, settings, listed, created)
        log(f"placed the keys and {blobs} blobs")
        database = src / f"database.{_ext(manifest)}"
        if dbb.kind(url) == "sqlite":
            _restore_sqlite(database, dbb.sqlite_path(url), created)
        else:
            dbb.pg_restore(url, database, pg_bin=pg_bin)
        log("database restored")
    except BaseException:
        for path in reversed(created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    return Restored(manifest, sha, len(listed), blobs, time.perf_counter() - t0)


def _place_file(source: Path, target: Path, created: list[Path]) -> None:
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)
        created.append(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    created.append(target)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as f:
        shutil.copyfileobj(f, out, mf.CHUNK)
        out.flush()
        os.fsync(out.fileno())


def _place_blobs(src: Path, settings: Settings, listed: list[mf.Entry], created: list[Path]) -> int:
    """Copy the set's blobs into the directory store. The set keeps the store's own layout
    (``ab/ab12…``); one ``os.sync`` at the end instead of the store writer's two fsyncs per blob
    makes this several times faster, and the deep check after the restore reads every blob back
    through the store, so a layout that no longer matched would fail there, loudly."""
    blobs = [e for e in listed if e.path.startswith("blobs/")]
    if not blobs:
        return 0
    root = Path(str(settings.blob_dir))
    if not root.exists():
        created.append(root)
    store = DirectoryBlobStore(root)  # creates the root (0700) and its tmp/
    for e in blobs:
        target = root / e.path.removeprefix("blobs/")
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, open(src / e.path, "rb") as f:
            shutil.copyfileobj(f, out, mf.CHUNK)
    os.sync()
    first = blobs[0].path.rsplit("/", 1)[1]
    if not store.exists(first):
        raise RestoreError(f"blob {first} was placed where the blob store does not look for it")
    return len(blobs)


def _restore_sqlite(database: Path, target: Path, created: list[Path]) -> None:
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)
        created.append(target.parent)
    tmp = target.with_name(f".{target.name}.restoring")
    tmp.unlink(missing_ok=True)
    created.append(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, open(database, "rb") as f:
        shutil.copyfileobj(f, out, mf.CHUNK)
        out.flush()
        os.fsync(out.fileno())
    result = dbb.sqlite_integrity(tmp)
    if result != "ok":
        raise RestoreError(f"the database in the set fails SQLite's integrity check: {result}")
    os.replace(tmp, target)  # an empty file left by an earlier start is replaced
    created.append(target)


# ---------------------------------------------------------------- after the restore

def check_restored(settings: Settings, engine: Engine, store: BlobStore | None, manifest: dict,
                   *, log: Callable[[str], None] = lambda _m: None) -> Checked:
    """The restored instance, whole: the audit trail against its newest stored checkpoint and
    the set's own, every blob authenticated under its key, every wrapped key unwrapped, every
    sealed value opened. The field-key cache starts afresh on the restored keys."""
    out = Checked()
    keyring = keyring_for(str(settings.keyring_path))
    sealed.reset()
    sealed.configure(keyring, str(settings.database_url))
    pem = checkpoints.signing_key(str(settings.audit_key_path)).public_key_pem()
    with engine.connect() as conn:
        chain = verify_chain(conn)
        if not chain.ok:
            out.problems.append(f"audit trail broken at sequence {chain.first_bad_seq}: {chain.problem}")
        stored = checkpoints.check_stored(conn, pem, checkpoints.newest(conn))
        if not stored.ok:
            out.problems.append(f"stored checkpoint: {stored.message}")
        cp = (manifest.get("audit") or {}).get("checkpoint")
        if cp:
            ok, message = checkpoints.check(conn, cp, pem)
            (out.notes if ok else out.problems).append(f"the set's checkpoint: {message}")
        conn.rollback()
    out.notes.append(f"audit trail: {chain.count} events, newest stored checkpoint: {stored.message}")
    with Session(engine) as s:
        blob_store = store if isinstance(store, DirectoryBlobStore) else DatabaseBlobStore(lambda: s)
        report = blobcheck.check(s, blob_store, keyring, deep=True)
        for bad in report.bad:
            out.problems.append(f"{bad.ref.holder} #{bad.ref.row_id}: blob {bad.ref.blob_key} {bad.problem}")
        for ref in report.missing:
            out.problems.append(f"{ref.holder} #{ref.row_id}: blob {ref.blob_key} missing")
        for orphan in report.orphans:
            out.problems.append(f"blob {orphan.key}: no record names it")
        out.notes.append(f"blobs: {report.checked} authenticated ({report.bytes_read / 1e6:,.1f} MB)")
        unwrapped = 0
        for h in registry.holders():
            for kek_id, wrapped in s.execute(select(h.kek, h.wrapped).where(h.kek.is_not(None), h.kek != "")):
                try:
                    keyring.unwrap(kek_id, bytes(wrapped))
                    unwrapped += 1
                except KeyringError as exc:
                    out.problems.append(f"{h.label}: a data key under {kek_id} does not unwrap ({exc})")
        opened = 0
        for table_name, column in registry.sealed_columns():
            table = Base.metadata.tables[table_name]
            (pk_col,) = table.primary_key.columns
            for pk, value in s.execute(select(pk_col, table.c[column])):
                if not value:
                    continue
                try:
                    sealed.cipher().decrypt(bytes(value), sealed.row_aad(table_name, pk, column))
                    opened += 1
                except Exception as exc:  # noqa: BLE001 - reported, with the place only
                    out.problems.append(f"{table_name}.{column} of row {pk} does not open ({type(exc).__name__})")
        out.notes.append(f"{unwrapped} wrapped data keys unwrap, {opened} sealed values open")
        s.rollback()
    log("checks done")
    return out


def record_restore(engine: Engine, restored: Restored) -> None:
    """Record the restore in the restored trail. Leases of wraps that were in flight when the
    snapshot was taken belong to uploads of the old servers that will never commit here:
    dropped, so that they do not hold up a key retirement until they expire."""
    from portal.encryption.models import KekLease

    with Session(engine) as s:
        s.execute(sa.delete(KekLease))
        record(s, "backup.restore", details={"created_at": restored.manifest.get("created_at"),
                                             "manifest_sha256": restored.manifest_sha256,
                                             "blobs": restored.blobs})
        s.commit()
