"""Opens the keyring file of key-encryption keys: one keyring object per file and process.

Unwrapped keys live only in memory; the keyring file stays outside the database. A
``FileKeyring`` re-reads its file whenever it changed on disk, so a rotation or retirement
done by ``portal keys`` in another process is seen by the next wrap or unwrap here.
"""
from __future__ import annotations

import threading
from pathlib import Path

from crypto import FileKeyring, Keyring

_lock = threading.Lock()
_keyrings: dict[str, Keyring] = {}


def keyring_for(path: str | Path) -> Keyring:
    key = str(path)
    with _lock:
        if key not in _keyrings:
            _keyrings[key] = FileKeyring(Path(path))
        return _keyrings[key]


def current_keyring() -> Keyring:
    """The keyring of the running app (a request or a CLI command)."""
    from flask import current_app

    return keyring_for(current_app.config["SETTINGS"].keyring_path)
