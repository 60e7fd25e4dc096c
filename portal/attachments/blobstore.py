"""Ciphertext storage behind one interface, two backends: a directory (default; atomic
writes: a temporary file renamed into place only on commit) and the database (ordered
chunks in ``blob_chunks``, written in the caller's transaction so a rollback removes them).
Keys are random; nothing a user typed ever becomes a path.

Leftovers of a killed worker: on the directory store a ``tmp/<key>.part`` file. Its writer
holds an exclusive ``flock`` on it from creation to commit or abort; the kernel drops the lock
when the process dies, however it dies. ``remove_partial`` removes a temporary only when it is
both unlocked and untouched for longer than the threshold: the lock alone protects a live
writer on this host however slow its client, the age alone one on another host sharing the
directory over a file system whose locks this host may not see. On the database store a
killed worker's chunks vanish with its transaction; chunks no row names (a writer that
committed them apart from their row) are removed once older than the threshold.
"""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, Protocol

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from portal.attachments.models import BlobChunk
from portal.db import utcnow

_KEY = re.compile(r"^[0-9a-f]{32}$")
READ_CHUNK = 1 << 20


def new_key() -> str:
    return secrets.token_hex(16)


def _check(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError("not a blob key")
    return key


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    def writer(self, key: str) -> BlobWriter: ...
    def read(self, key: str) -> Iterator[bytes]: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self) -> Iterator[str]: ...


class _FileWriter:
    def __init__(self, final: Path, tmp: Path):
        self.final, self.tmp = final, tmp
        # Held open across writes until commit or abort, which close it (and drop the lock).
        self.f = open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb", buffering=0)  # noqa: SIM115
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        except BlockingIOError:
            self.abort()
            raise
        except OSError:
            pass  # a file system without locks: the cleaner's age threshold still protects it

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # Renamed while still locked: the cleaner never sees an unlocked finished temporary.
        os.replace(self.tmp, self.final)
        self.f.close()
        dirfd = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def abort(self) -> None:
        if not self.f.closed:
            self.f.close()
        self.tmp.unlink(missing_ok=True)


class DirectoryBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def _path(self, key: str) -> Path:
        key = _check(key)
        return self.root / key[:2] / key

    def writer(self, key: str) -> BlobWriter:
        return _FileWriter(self._path(key), self.root / "tmp" / f"{_check(key)}.part")

    def read(self, key: str) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            while chunk := f.read(READ_CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for p in sorted(sub.iterdir()):
                    if _KEY.match(p.name):
                        yield p.name

    def modified(self, key: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime).astimezone()
        except FileNotFoundError:
            return None

    def partials(self) -> list[tuple[Path, float]]:
        """Every temporary with its age in seconds since its last write."""
        now = time.time()
        out = []
        for p in sorted((self.root / "tmp").glob("*.part")):
            try:
                out.append((p, now - p.stat().st_mtime))
            except FileNotFoundError:
                continue  # committed or aborted meanwhile
        return out

    def remove_partial(self, path: Path, older_than: timedelta) -> str:
        """``removed``, ``in_use`` (its writer holds the lock) or ``recent``."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return "gone"
        try:
            st = os.fstat(fd)
            if time.time() - st.st_mtime < older_than.total_seconds():
                return "recent"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return "in_use"
            except OSError:
                pass  # no locks on this file system: the age alone decides
            try:
                now = os.stat(path)
            except FileNotFoundError:
                return "gone"
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return "gone"  # renamed away and replaced: not the file we locked
            os.unlink(path)
            return "removed"
        finally:
            os.close(fd)


class _DbWriter:
    CHUNK = 1 << 20

    def __init__(self, session: Session, key: str):
        self.session, self.key = session, key
        self.buf = bytearray()
        self.seq = 0

    def _flush_chunk(self, data: bytes) -> None:
        self.session.add(BlobChunk(key=self.key, seq=self.seq, data=data))
        self.session.flush()
        self.seq += 1

    def write(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= self.CHUNK:
            self._flush_chunk(bytes(self.buf[: self.CHUNK]))
            del self.buf[: self.CHUNK]

    def commit(self) -> None:
        if self.buf or self.seq == 0:
            self._flush_chunk(bytes(self.buf))
            self.buf.clear()

    def abort(self) -> None:
        self.session.execute(delete(BlobChunk).where(BlobChunk.key == self.key))


class DatabaseBlobStore:
    def __init__(self, session_factory):
        self.session_factory = session_factory  # returns the request's session

    def writer(self, key: str) -> BlobWriter:
        return _DbWriter(self.session_factory(), _check(key))

    def read(self, key: str) -> Iterator[bytes]:
        seq = 0
        while True:
            # The session is looked up for each chunk: a download reads its first chunk in the
            # request (to check it before responding) and the rest in the streamed response,
            # whose session is another one.
            data = self.session_factory().execute(
                select(BlobChunk.data).where(BlobChunk.key == _check(key), BlobChunk.seq == seq)).scalar()
            if data is None:
                return
            yield bytes(data)
            seq += 1

    def delete(self, key: str) -> None:
        self.session_factory().execute(delete(BlobChunk).where(BlobChunk.key == _check(key)))

    def exists(self, key: str) -> bool:
        return self.session_factory().execute(
            select(BlobChunk.seq).where(BlobChunk.key == _check(key)).limit(1)).first() is not None

    def keys(self) -> Iterator[str]:
        yield from self.session_factory().execute(select(BlobChunk.key).distinct().order_by(BlobChunk.key)).scalars()

    def unreferenced(self, referenced: Select, older_than: timedelta | None = None) -> list[str]:
        """Keys no row names (``referenced`` selects the keys rows name), optionally only those
        whose newest chunk is older than ``older_than``."""
        stmt = select(BlobChunk.key).where(BlobChunk.key.not_in(referenced)).group_by(BlobChunk.key)
        if older_than is not None:
            stmt = stmt.having(func.max(BlobChunk.created_at) < utcnow() - older_than)
        return list(self.session_factory().execute(stmt.order_by(BlobChunk.key)).scalars())

    def remove_unreferenced(self, keys: list[str], referenced: Select) -> int:
        """Delete those keys' chunks, checking again in the same statement that no row names
        them; in the caller's transaction."""
        removed = 0
        for i in range(0, len(keys), 500):
            removed += self.session_factory().execute(
                delete(BlobChunk).where(BlobChunk.key.in_(keys[i:i + 500]), BlobChunk.key.not_in(referenced))
                .execution_options(synchronize_session=False)).rowcount
        return removed
