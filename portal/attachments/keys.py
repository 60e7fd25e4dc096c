"""The portal's view of the keyring: per-attachment data keys and field-encryption keys.
Unwrapped keys live only in memory; the keyring file stays outside the database."""
from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto import FileKeyring, Keyring, new_dek, seal, unseal
from portal.attachments.models import DataKey

FIELD_PURPOSE = "field"
_lock = threading.Lock()
_keyrings: dict[str, Keyring] = {}


def keyring_for(path: str | Path) -> Keyring:
    key = str(path)
    with _lock:
        if key not in _keyrings:
            _keyrings[key] = FileKeyring(Path(path))
        return _keyrings[key]


def current_keyring() -> Keyring:
    from flask import current_app

    return keyring_for(current_app.config["SETTINGS"].keyring_path)


# ------------------------------------------------------------------ field encryption

_field_dek_cache: dict[tuple[str, int], bytes] = {}


def _unwrap_data_key(keyring: Keyring, dk: DataKey) -> bytes:
    cache_key = (str(id(keyring)), dk.id)
    dek = _field_dek_cache.get(cache_key)
    if dek is None:
        dek = keyring.unwrap(dk.kek_id, dk.wrapped)
        _field_dek_cache[cache_key] = dek
    return dek


def field_key(session: Session, keyring: Keyring) -> DataKey:
    """The newest field data key, created on first use."""
    dk = session.execute(select(DataKey).where(DataKey.purpose == FIELD_PURPOSE).order_by(DataKey.id.desc())
                         .limit(1)).scalar_one_or_none()
    if dk is None:
        kek_id, wrapped = keyring.wrap(new_dek())
        dk = DataKey(purpose=FIELD_PURPOSE, kek_id=kek_id, wrapped=wrapped)
        session.add(dk)
        session.flush()
    return dk


def encrypt_field(session: Session, keyring: Keyring, plaintext: str, aad: bytes) -> bytes:
    dk = field_key(session, keyring)
    return dk.id.to_bytes(4, "big") + seal(_unwrap_data_key(keyring, dk), plaintext, aad)


def decrypt_field(session: Session, keyring: Keyring, blob: bytes, aad: bytes) -> str:
    key_id = int.from_bytes(blob[:4], "big")
    dk = session.get(DataKey, key_id)
    if dk is None:
        raise ValueError("unknown field data key")
    return unseal(_unwrap_data_key(keyring, dk), blob[4:], aad)


def forget_cached_keys() -> None:
    _field_dek_cache.clear()
