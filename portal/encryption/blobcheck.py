"""``portal blobs check`` and ``portal blobs clean-partial``: the blob store against the
registry of everything encrypted (``portal.encryption.registry``).

The check knows every holder the registry lists (attachments, inform notices, whatever
registers later), so no record's blob is ever called an orphan. It reports

- records without their blob (a problem: that record cannot be downloaded),
- orphan blobs no record names (on the directory store a blob is committed just before its
  row, so one younger than ``grace`` may be an upload still committing: shown, not counted),
- stale partial uploads (``.part`` temporaries of killed workers),
- with ``deep``: every blob read and authenticated through ``crypto.stream`` under its own
  data key and attachment id; the plaintext is discarded chunk by chunk, nothing is written.
  A bad blob is named with what failed: missing, truncated, extended, tampered, wrong key,
  belongs to another record.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator

from crypto import DecryptionError, FormatError, Keyring, KeyringError, UnknownKey, decrypt_stream
from crypto.stream import FIXED_HEADER_SIZE, ciphertext_size, header_size
from portal.attachments.blobstore import BlobStore, DatabaseBlobStore, DirectoryBlobStore
from portal.db import utcnow
from portal.encryption import registry
from portal.encryption.registry import BlobRef

DEFAULT_STALE = timedelta(hours=24)
DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Bad:
    ref: BlobRef
    problem: str  # missing | truncated | extended | tampered | wrong key | other record | damaged header
    detail: str


@dataclass(frozen=True)
class Orphan:
    key: str
    modified: datetime | None  # None: the database store keeps no file time

    def recent(self, now: datetime, grace: timedelta) -> bool:
        return self.modified is not None and now - self.modified < grace


@dataclass
class Report:
    records: int = 0
    blobs: int = 0
    missing: list[BlobRef] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    recent_orphans: list[Orphan] = field(default_factory=list)
    partials: list[tuple[Path, float]] = field(default_factory=list)  # stale: (path, age in seconds)
    partials_in_progress: int = 0
    bad: list[Bad] = field(default_factory=list)
    deep: bool = False
    checked: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.orphans or self.partials or self.bad)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0


def check(conn, store: BlobStore, keyring: Keyring, *, deep: bool = False, stale: timedelta = DEFAULT_STALE,
          grace: timedelta = DEFAULT_GRACE, progress: Callable[[int], None] | None = None) -> Report:
    """``conn``: the session the store reads through (database store) or any session."""
    out = Report(deep=deep)
    # A blob is stored before the row that names it commits: read the rows before listing the
    # blobs (a row seen has its blob), and the rows again after (a blob seen whose row
    # committed meanwhile is no orphan).
    refs = list(registry.blob_refs(conn))
    present = set(store.keys())
    named = {r.blob_key for r in registry.blob_refs(conn)} | {r.blob_key for r in refs}
    out.records, out.blobs = len(refs), len(present)
    out.missing = [r for r in refs if r.blob_key not in present]
    now = utcnow()
    for key in sorted(present - named):
        o = Orphan(key, store.modified(key) if isinstance(store, DirectoryBlobStore) else None)
        (out.recent_orphans if o.recent(now, grace) else out.orphans).append(o)
    if isinstance(store, DirectoryBlobStore):
        for path, age in store.partials():
            if age >= stale.total_seconds():
                out.partials.append((path, age))
            else:
                out.partials_in_progress += 1
    if deep:
        t0 = time.perf_counter()
        for r in refs:
            if r.blob_key not in present:
                continue
            problem = authenticate(store, keyring, r, out)
            out.checked += 1
            if problem is not None:
                out.bad.append(problem)
            if progress:
                progress(1)
        out.seconds = time.perf_counter() - t0
    return out


class _Counted:
    """The blob's chunks as read, counted, with the start of the header kept for the
    diagnosis of a failure."""

    def __init__(self, chunks: Iterable[bytes]):
        self.it = iter(chunks)
        self.n = 0
        self.head = b""

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.it:
            self.n += len(chunk)
            if len(self.head) < FIXED_HEADER_SIZE:
                self.head += bytes(chunk[: FIXED_HEADER_SIZE - len(self.head)])
            yield chunk

    def drain(self) -> int:
        for chunk in self.it:
            self.n += len(chunk)
        return self.n


def authenticate(store: BlobStore, keyring: Keyring, ref: BlobRef, report: Report | None = None) -> Bad | None:
    """Decrypt one blob to nowhere; None when every segment authenticated."""
    try:
        dek = keyring.unwrap(ref.kek_id, ref.wrapped_dek)
    except UnknownKey:
        return Bad(ref, "wrong key", f"its KEK {ref.kek_id} is not in the keyring")
    except KeyringError:
        return Bad(ref, "wrong key", f"its data key does not unwrap under {ref.kek_id}")
    counted = _Counted(store.read(ref.blob_key))
    try:
        for _plain in decrypt_stream(dek, ref.associated_data, counted):
            pass  # authenticated and dropped: no plaintext is kept or written
    except FileNotFoundError:
        return Bad(ref, "missing", "the blob disappeared while it was checked")
    except DecryptionError as exc:
        counted.drain()
        return _diagnose(ref, counted, exc)
    finally:
        if report is not None:
            report.bytes_read += counted.n
    return None


def _diagnose(ref: BlobRef, counted: _Counted, exc: DecryptionError) -> Bad:
    text = str(exc)
    if "attachment id mismatch" in text:
        return Bad(ref, "other record", "the blob was sealed for another record")
    if "key commitment" in text:
        return Bad(ref, "wrong key", "the data key does not open it (or its header is damaged)")
    expected = None
    if ref.size is not None and len(counted.head) >= FIXED_HEADER_SIZE:
        segment = int.from_bytes(counted.head[6:10], "big")
        try:
            expected = ciphertext_size(ref.size, segment, header_size(len(ref.associated_data)))
        except ValueError:
            expected = None
    if counted.n == 0:
        return Bad(ref, "missing", "the blob is empty")
    if expected is not None and counted.n < expected:
        return Bad(ref, "truncated", f"{counted.n} of {expected} bytes")
    if expected is not None and counted.n > expected:
        return Bad(ref, "extended", f"{counted.n} bytes, {expected} expected")
    if text.startswith("truncated"):  # "truncated header", "truncated stream: ..."
        return Bad(ref, "truncated", text)
    if isinstance(exc, FormatError):
        return Bad(ref, "damaged header", text)
    return Bad(ref, "tampered", text)


@dataclass
class Cleaned:
    removed: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    recent: int = 0


def clean_partial(conn, store: BlobStore, older_than: timedelta) -> Cleaned:
    """Remove what killed workers left behind (``portal.attachments.blobstore`` says why each
    removal is safe). Database store: in ``conn``'s transaction, which the caller commits."""
    out = Cleaned()
    if isinstance(store, DirectoryBlobStore):
        for path, _age in store.partials():
            result = store.remove_partial(path, older_than)
            if result == "removed":
                out.removed.append(str(path))
            elif result == "in_use":
                out.in_use.append(str(path))
            elif result == "recent":
                out.recent += 1
    elif isinstance(store, DatabaseBlobStore):
        referenced = registry.blob_keys_select()
        keys = store.unreferenced(referenced, older_than)
        store.remove_unreferenced(keys, referenced)
        out.removed = keys
        out.recent = len(store.unreferenced(referenced))  # what the threshold kept
    return out
