"""Key-encryption keys (KEKs) that wrap per-object data keys (DEKs).

The portal codes against the :class:`Keyring` protocol. :class:`FileKeyring`
is the embedded default (a 0600 JSON file outside the database and the repo);
a deployment can put a KMS/HSM behind the same interface. :class:`MemoryKeyring`
behaves the same without a file and is meant for tests.

Wrapping is AES key wrap (RFC 3394) under a 256-bit KEK.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import secrets
import threading
from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from . import _files

__all__ = [
    "KeyringError",
    "UnknownKey",
    "KeyInUse",
    "Keyring",
    "FileKeyring",
    "MemoryKeyring",
    "KEK_SIZE",
    "KEYRING_FILE_VERSION",
    "new_kek_id",
]

KEK_SIZE = 32
KEYRING_FILE_VERSION = 1
_KEK_ID_RE = re.compile(r"\Akek-[0-9]{8}-[0-9a-f]{8}\Z")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class KeyringError(Exception):
    """Anything wrong with a keyring: unreadable or insecure file, bad format,
    a wrapped key that does not unwrap, a refused operation."""


class UnknownKey(KeyringError):
    """The KEK id is not (or no longer) in the keyring."""


class KeyInUse(KeyringError):
    """A KEK is still referenced and cannot be retired (raised by callers that
    check references before calling :meth:`Keyring.retire`)."""


@runtime_checkable
class Keyring(Protocol):
    """The small interface the portal uses; a KMS/HSM adapter implements it too."""

    @property
    def active_id(self) -> str:
        """Id of the KEK that :meth:`wrap` uses."""
        ...

    def ids(self) -> list[str]:
        """All KEK ids present (oldest first)."""
        ...

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        """Wrap ``dek`` under the active KEK; return ``(kek_id, wrapped)``."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Unwrap; :class:`UnknownKey` for an unknown/retired id,
        :class:`KeyringError` if the wrapped value does not verify."""
        ...

    def rotate(self) -> str:
        """Add a fresh random 256-bit KEK, make it active, persist; return its id."""
        ...

    def retire(self, kek_id: str) -> None:
        """Remove a non-active KEK (the caller has checked nothing uses it)."""
        ...

    def status(self) -> dict:
        """A JSON-serialisable description without any key material."""
        ...


def new_kek_id(now: _dt.datetime | None = None) -> str:
    """``kek-YYYYMMDD-<8 hex>`` using the UTC date."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"kek-{now.strftime('%Y%m%d')}-{secrets.token_hex(4)}"


def _utc_now_iso() -> str:
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


class _Kek:
    __slots__ = ("key", "created")

    def __init__(self, key: bytes, created: str) -> None:
        self.key = key
        self.created = created

    def __repr__(self) -> str:  # never show key material
        return f"<KEK created={self.created}>"


class _KeyringBase:
    """Shared in-memory behaviour of the concrete keyrings."""

    _backend = "base"

    def __init__(self) -> None:
        self._keys: dict[str, _Kek] = {}
        self._active: str = ""
        self._mutex = threading.RLock()

    # -- hooks -----------------------------------------------------------
    def _refresh(self) -> None:
        """Bring the in-memory view up to date (file keyrings re-read)."""

    # -- protocol --------------------------------------------------------
    @property
    def active_id(self) -> str:
        with self._mutex:
            self._refresh()
            return self._active

    def ids(self) -> list[str]:
        with self._mutex:
            self._refresh()
            return self._ordered_ids()

    def _ordered_ids(self) -> list[str]:
        return sorted(self._keys, key=lambda k: (self._keys[k].created, k))

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        dek = bytes(dek)
        if len(dek) < 16 or len(dek) % 8:
            raise ValueError("key to wrap must be at least 16 bytes and a multiple of 8")
        with self._mutex:
            self._refresh()
            kek_id = self._active
            kek = self._keys[kek_id].key
        return kek_id, aes_key_wrap(kek, dek)

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        with self._mutex:
            self._refresh()
            entry = self._keys.get(kek_id)
            if entry is None:
                raise UnknownKey(f"unknown or retired key-encryption key {kek_id!r}")
            kek = entry.key
        try:
            return aes_key_unwrap(kek, bytes(wrapped))
        except (InvalidUnwrap, ValueError):
            raise KeyringError(
                f"wrapped key does not unwrap under {kek_id!r} (corrupt or wrong key)"
            ) from None

    def status(self) -> dict:
        with self._mutex:
            self._refresh()
            return {
                "backend": self._backend,
                "active": self._active,
                "keys": [
                    {
                        "id": kid,
                        "created": self._keys[kid].created,
                        "active": kid == self._active,
                    }
                    for kid in self._ordered_ids()
                ],
                **self._extra_status(),
            }

    def _extra_status(self) -> dict[str, Any]:
        return {}

    # -- helpers for mutation -------------------------------------------
    def _add_new_key(self) -> str:
        kek_id = new_kek_id()
        while kek_id in self._keys:  # pragma: no cover - 2^-32 per try
            kek_id = new_kek_id()
        self._keys[kek_id] = _Kek(secrets.token_bytes(KEK_SIZE), _utc_now_iso())
        self._active = kek_id
        return kek_id

    def _remove_key(self, kek_id: str) -> None:
        if kek_id not in self._keys:
            raise UnknownKey(f"unknown or retired key-encryption key {kek_id!r}")
        if kek_id == self._active:
            raise KeyringError(f"{kek_id!r} is the active key; rotate before retiring it")
        del self._keys[kek_id]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} active={self._active!r} keys={len(self._keys)}>"


class MemoryKeyring(_KeyringBase):
    """An in-memory keyring with the same behaviour as :class:`FileKeyring`.

    ``MemoryKeyring()`` starts with one random KEK. ``keys``/``active`` let a
    test supply fixed KEKs (``{kek_id: 32-byte key}``).
    """

    _backend = "memory"

    def __init__(
        self, keys: Mapping[str, bytes] | None = None, active: str | None = None
    ) -> None:
        super().__init__()
        if not keys:
            if active is not None:
                raise KeyringError("active given without keys")
            self._add_new_key()
            return
        created = _utc_now_iso()
        for kid, key in keys.items():
            key = bytes(key)
            if len(key) != KEK_SIZE:
                raise KeyringError(f"{kid!r}: KEK must be {KEK_SIZE} bytes")
            self._keys[kid] = _Kek(key, created)
        if active is None:
            active = list(keys)[-1]
        if active not in self._keys:
            raise KeyringError("active key is not in the keyring")
        self._active = active

    def rotate(self) -> str:
        with self._mutex:
            return self._add_new_key()

    def retire(self, kek_id: str) -> None:
        with self._mutex:
            self._remove_key(kek_id)


class FileKeyring(_KeyringBase):
    """The embedded default keyring: a 0600 JSON file.

    Format (see FORMAT.md)::

        {"version": 1, "active": "kek-...",
         "keys": {"kek-...": {"key": "<base64>", "created": "<ISO 8601 UTC>"}}}

    Reads go through a permission check (no group/other bits). Every write is
    atomic (temporary 0600 file in the same directory, fsync, rename).
    ``rotate``/``retire`` hold ``flock`` on the sibling ``<name>.lock`` and
    re-read the file first, so several processes can share one keyring. Any
    operation re-reads the file when it has changed on disk.
    """

    _backend = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = os.fspath(path)
        self._lock_path = self._path + ".lock"
        self._sig: tuple[int, ...] | None = None
        self._load()

    @property
    def path(self) -> str:
        return self._path

    # -- creation --------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> "FileKeyring":
        """Create a new keyring file holding one fresh KEK.

        The file is created with ``O_CREAT|O_EXCL`` and mode 0600; an existing
        file (or symlink) at ``path`` is refused with :class:`KeyringError`.
        """
        tmp = _KeyringBase()
        tmp._add_new_key()
        data = _serialise(tmp._keys, tmp._active)
        try:
            _files.create_private(path, data)
        except FileExistsError:
            raise KeyringError(f"{os.fspath(path)}: already exists; refusing to overwrite") from None
        except OSError as exc:
            raise KeyringError(f"{os.fspath(path)}: cannot create keyring: {exc.strerror}") from None
        return cls(path)

    # -- loading ---------------------------------------------------------
    @staticmethod
    def _signature(st: os.stat_result) -> tuple[int, ...]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _load(self) -> None:
        try:
            raw, st = _files.read_private(self._path)
        except _files.InsecureFileError as exc:
            raise KeyringError(str(exc)) from None
        except OSError as exc:
            raise KeyringError(f"{self._path}: cannot read keyring: {exc.strerror}") from None
        keys, active = _parse(raw, self._path)
        self._keys = keys
        self._active = active
        self._sig = self._signature(st)

    def _refresh(self) -> None:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise KeyringError(f"{self._path}: keyring unavailable: {exc.strerror}") from None
        if self._signature(st) != self._sig:
            self._load()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
        except OSError as exc:
            raise KeyringError(f"{self._lock_path}: cannot open lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _persist(self) -> None:
        try:
            _files.replace_private(self._path, _serialise(self._keys, self._active))
        except OSError as exc:
            raise KeyringError(f"{self._path}: cannot write keyring: {exc.strerror}") from None

    # -- mutation --------------------------------------------------------
    def rotate(self) -> str:
        with self._mutex, self._locked():
            self._load()
            kek_id = self._add_new_key()
            self._persist()
            self._load()
            return kek_id

    def retire(self, kek_id: str) -> None:
        with self._mutex, self._locked():
            self._load()
            self._remove_key(kek_id)
            self._persist()
            self._load()

    def _extra_status(self) -> dict[str, Any]:
        return {"path": self._path}


def _serialise(keys: Mapping[str, _Kek], active: str) -> bytes:
    doc = {
        "version": KEYRING_FILE_VERSION,
        "active": active,
        "keys": {
            kid: {"key": base64.b64encode(k.key).decode("ascii"), "created": k.created}
            for kid, k in keys.items()
        },
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _parse(raw: bytes, where: str) -> tuple[dict[str, _Kek], str]:
    def bad(msg: str) -> KeyringError:
        return KeyringError(f"{where}: invalid keyring file: {msg}")

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("not JSON") from None
    if not isinstance(doc, dict):
        raise bad("not an object")
    if doc.get("version") != KEYRING_FILE_VERSION:
        raise bad(f"unsupported version {doc.get('version')!r}")
    entries = doc.get("keys")
    active = doc.get("active")
    if not isinstance(entries, dict) or not entries:
        raise bad("no keys")
    keys: dict[str, _Kek] = {}
    for kid, entry in entries.items():
        if not _KEK_ID_RE.match(kid):
            raise bad(f"malformed key id {kid!r}")
        if not isinstance(entry, dict):
            raise bad(f"{kid}: entry is not an object")
        b64, created = entry.get("key"), entry.get("created")
        if not isinstance(b64, str) or not isinstance(created, str):
            raise bad(f"{kid}: missing key or created")
        try:
            key = base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise bad(f"{kid}: key is not base64") from None
        if len(key) != KEK_SIZE:
            raise bad(f"{kid}: key must be {KEK_SIZE} bytes")
        keys[kid] = _Kek(key, created)
    if not isinstance(active, str) or active not in keys:
        raise bad("active key is missing")
    return keys, active
