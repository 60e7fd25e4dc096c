"""Taking a backup set while the portal serves (the order is the package docstring's)."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from crypto import FileKeyring, KeyringError
from portal.attachments.blobstore import BlobStore, DirectoryBlobStore
from portal.audit import checkpoints
from portal.audit.models import AuditEvent
from portal.audit.trail import GENESIS, record
from portal.backup import database as dbb
from portal.backup import manifest as mf
from portal.config import Settings
from portal.encryption import registry
import portal.models  # noqa: F401  (every holder registered)

ATTEMPTS = 3


class BackupError(Exception):
    """The backup cannot be taken; nothing was left at the destination."""


@dataclass
class Snapshot:
    """What the database snapshot holds, read from the snapshot itself."""
    schema: str | None
    blob_keys: dict[str, str]          # blob key -> holder label
    keks: set[str]                     # KEKs the snapshot's rows use (wraps in flight not counted)
    head_seq: int
    head_hash: str
    checkpoint: dict | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Taken:
    dest: Path
    keys_dest: Path | None
    files: int
    bytes: int
    blobs: int
    attempts: int
    seconds: float
    manifest_sha256: str
    key_id: str
    missing: list[str]  # blobs the database names that the store does not have (damage found, not made)


def _read_snapshot(conn) -> Snapshot:
    refs = list(registry.blob_refs(conn))
    usage = registry.kek_usage_by_holder(conn)
    row = conn.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    cp = checkpoints.newest(conn)
    counts: dict[str, int] = {}
    for r in refs:
        counts[r.holder] = counts.get(r.holder, 0) + 1
    return Snapshot(
        schema=conn.execute(text("SELECT version_num FROM alembic_version")).scalar(),
        blob_keys={r.blob_key: r.holder for r in refs},
        keks={k for k, by in usage.items() if set(by) - {registry.IN_FLIGHT}},
        head_seq=row[0] if row else 0, head_hash=row[1] if row else GENESIS,
        checkpoint=None if cp is None else {"payload": checkpoints.document(cp, b"")["payload"],
                                            "signature": cp.signature},
        counts=counts)


@contextlib.contextmanager
def keyring_lock(keyring_path: Path) -> Iterator[None]:
    """The lock ``crypto.kek.FileKeyring`` takes to rotate or retire (its sibling ``.lock``):
    while it is held, no KEK appears in or leaves the keyring file."""
    fd = os.open(f"{keyring_path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_chunks(path: Path, chunks) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return n, h.hexdigest()


def _copy_blob(store: BlobStore, key: str, root: Path) -> tuple[int, str] | None:
    """Copy one blob into the set; None if the store no longer has it."""
    target = root / "blobs" / key[:2] / key
    _private_dir(target.parent)
    try:
        return _write_chunks(target, store.read(key))
    except FileNotFoundError:
        return None


def _check_destination(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path}: the {what} must be a new or empty directory")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent}: no such directory")


def _place(work: Path, final: Path) -> None:
    if final.exists():
        final.rmdir()  # checked empty at the start
    os.replace(work, final)


def take(settings: Settings, engine: Engine, store: BlobStore, dest: Path, *, keys_dest: Path | None = None,
         pg_bin: str | None = None, log: Callable[[str], None] = lambda _m: None) -> Taken:
    t0 = time.perf_counter()
    dest = Path(dest).absolute()
    keys_dest = Path(keys_dest).absolute() if keys_dest else None
    _check_destination(dest, "backup destination")
    if keys_dest is not None:
        _check_destination(keys_dest, "keys destination")
        if keys_dest == dest or dest in keys_dest.parents or keys_dest in dest.parents:
            raise BackupError("--keys-separately must name a directory outside the backup destination")
    url = str(settings.database_url)
    db_kind = dbb.kind(url)
    keyring_path, audit_path = Path(str(settings.keyring_path)), Path(str(settings.audit_key_path))
    secret_path = Path(settings.instance_path) / "secret_key"
    for p in (keyring_path, audit_path):
        if not p.is_file():
            raise BackupError(f"{p}: missing; nothing to back up the keys from")
    pg_info: dict = {}
    if db_kind == "postgresql":
        with engine.connect() as c:
            server = dbb.server_major(c)
            c.rollback()
        pg_info = {"server_major": server,
                   "pg_dump": dbb.check_same_major(dbb.tool("pg_dump", pg_bin), server)}
    key = checkpoints.signing_key(str(audit_path))

    # A checkpoint of the trail as the set will hold it (at least this far).
    with Session(engine) as s:
        checkpoints.make(s, key, "backup")
        s.commit()

    tag = secrets.token_hex(4)
    work = dest.parent / f".{dest.name}.partial-{tag}"
    kwork = keys_dest.parent / f".{keys_dest.name}.partial-{tag}" if keys_dest else work
    _private_dir(work)
    _private_dir(kwork)
    placed: list[Path] = []
    try:
        taken = _take(settings, engine, store, db_kind, url, work, kwork, keyring_path, audit_path, secret_path,
                      key, pg_info, pg_bin, keys_dest is not None, log)
        os.sync()  # every file of the set on disk before the set gets its name
        if keys_dest is not None:
            _place(kwork, keys_dest)
            placed.append(keys_dest)
        _place(work, dest)
    except BaseException:
        for path in (work, kwork, *placed):
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(Exception), Session(engine) as s:  # the database may be what failed
            record(s, "backup.create", outcome="failure", details={"database": db_kind})
            s.commit()
        raise
    with Session(engine) as s:
        record(s, "backup.create", details={"database": db_kind, "blobs": taken.blobs, "attempts": taken.attempts,
                                            "manifest_sha256": taken.manifest_sha256})
        s.commit()
    taken.dest, taken.keys_dest, taken.seconds = dest, keys_dest, time.perf_counter() - t0
    return taken


def _take(settings, engine, store, db_kind, url, work: Path, kwork: Path, keyring_path: Path, audit_path: Path,
          secret_path: Path, key, pg_info, pg_bin, keys_apart: bool, log) -> Taken:
    listed: dict[str, tuple[int, str]] = {}
    # 1. Every blob there is now: written once, never changed, so a copy is final.
    copied: dict[str, tuple[int, str]] = {}
    if isinstance(store, DirectoryBlobStore):
        _private_dir(work / "blobs")
        for bkey in list(store.keys()):
            got = _copy_blob(store, bkey, work)
            if got is not None:
                copied[bkey] = got
        log(f"copied {len(copied)} blobs")
    db_file = work / ("database.sqlite" if db_kind == "sqlite" else "database.pgdump")
    keys_dir = kwork / mf.KEYS
    _private_dir(keys_dir)
    keyring_copy = keys_dir / "keyring.json"
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        db_file.unlink(missing_ok=True)
        keyring_copy.unlink(missing_ok=True)
        with contextlib.ExitStack() as stack:
            # 2. Snapshot and keyring copy under the keyring's lock.
            with keyring_lock(keyring_path):
                if db_kind == "sqlite":
                    dbb.sqlite_snapshot(url, db_file)
                    conn = stack.enter_context(dbb.sqlite_reader(db_file))
                else:
                    conn, snapshot_name = stack.enter_context(dbb.pg_snapshot(url))
                snap = _read_snapshot(conn)
                shutil.copyfile(keyring_path, keyring_copy)
                os.chmod(keyring_copy, 0o600)
            try:
                in_copy = set(FileKeyring(keyring_copy).ids())
            except KeyringError as exc:
                raise BackupError(f"the keyring copy is not usable: {exc}") from None
            lacking = snap.keks - in_copy
            if lacking:  # only a keyring changed outside `portal keys` can do this
                problem = f"the database uses KEKs the keyring copy lacks: {', '.join(sorted(lacking))}"
                log(f"attempt {attempt}: {problem}; retrying")
                continue
            if db_kind == "postgresql":
                dbb.pg_dump(url, snapshot_name, db_file, pg_bin=pg_bin)
        log(f"database snapshot taken (audit head {snap.head_seq})")
        # 3. The blobs the snapshot names that step 1 did not see.
        missing, deleted = [], []
        if isinstance(store, DirectoryBlobStore):
            for bkey in sorted(set(snap.blob_keys) - set(copied)):
                got = _copy_blob(store, bkey, work)
                if got is None:
                    missing.append(bkey)
                else:
                    copied[bkey] = got
            if missing:
                with engine.connect() as c:
                    live = {r.blob_key for r in registry.blob_refs(c)}
                    c.rollback()
                deleted = [k for k in missing if k not in live]
                missing = [k for k in missing if k in live]
        if deleted:
            problem = f"{len(deleted)} blobs were deleted after the snapshot"
            log(f"attempt {attempt}: {problem}; retrying")
            continue
        break
    else:
        raise BackupError(f"no consistent snapshot in {ATTEMPTS} attempts: {problem}")

    # Blobs the snapshot does not name: deleted before it, or orphans. Not part of the set.
    for bkey in set(copied) - set(snap.blob_keys):
        (work / "blobs" / bkey[:2] / bkey).unlink()
        del copied[bkey]
    for bkey, got in copied.items():
        listed[f"blobs/{bkey[:2]}/{bkey}"] = got
    listed[f"database.{db_file.name.split('.')[1]}"] = mf.digest(db_file)
    listed["keys/keyring.json"] = mf.digest(keyring_copy)
    for src, name in ((audit_path, "audit-signing.pem"), (secret_path, "secret_key")):
        if src.is_file():
            dst = keys_dir / name
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            listed[f"keys/{name}"] = mf.digest(dst)

    manifest = {
        "format": mf.FORMAT,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "database": db_kind, "blob_store": settings.blob_store, "schema": snap.schema,
        "postgresql": pg_info or None,
        "audit": {"head_seq": snap.head_seq, "head_hash": snap.head_hash, "checkpoint": snap.checkpoint},
        "keks": {"used": sorted(snap.keks), "keyring": sorted(in_copy)},
        "records": snap.counts, "blobs": len(copied), "missing_blobs": missing,
        "keys_separately": keys_apart,
        "secret_key": "in the set" if "keys/secret_key" in listed else "PORTAL_SECRET_KEY (not in the set)",
        "key_id": key.key_id, "public_key": key.public_key_pem().decode("ascii"),
        "files": [{"path": p, "size": n, "sha256": h} for p, (n, h) in sorted(listed.items())],
    }
    data = mf.sign(manifest, key)
    _write_chunks(work / mf.MANIFEST, [data])
    return Taken(work, None, files=len(listed) + 1, bytes=sum(n for n, _ in listed.values()) + len(data),
                 blobs=len(copied), attempts=attempt, seconds=0.0, manifest_sha256=hashlib.sha256(data).hexdigest(),
                 key_id=key.key_id, missing=missing)
