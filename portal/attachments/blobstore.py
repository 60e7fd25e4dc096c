"""Ciphertext storage behind one interface, two backends: a directory (default; atomic
writes: a temporary file renamed into place only on commit) and the database (ordered
chunks in ``blob_chunks``, written in the caller's transaction so a rollback removes them).
Keys are random; nothing a user typed ever becomes a path."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Iterator, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal.attachments.models import BlobChunk

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
        # Held open across writes until commit or abort, which close it.
        self.f = open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb", buffering=0)  # noqa: SIM115

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        self.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.final)
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

    def stale_temporaries(self) -> list[Path]:
        return sorted((self.root / "tmp").glob("*.part"))


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
        s = self.session_factory()
        seq = 0
        while True:
            data = s.execute(select(BlobChunk.data).where(BlobChunk.key == _check(key), BlobChunk.seq == seq)).scalar()
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
