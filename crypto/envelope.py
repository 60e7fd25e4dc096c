"""Envelope encryption: a fresh random data key (DEK) per object, stored
wrapped by a key-encryption key (KEK) from a :class:`~crypto.kek.Keyring`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .kek import Keyring

__all__ = ["DEK_SIZE", "new_dek", "WrappedKey", "wrap_new", "unwrap_dek", "rewrap_dek"]

DEK_SIZE = 32


def new_dek() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(DEK_SIZE)


@dataclass(frozen=True)
class WrappedKey:
    """A DEK as stored: the id of the KEK that wraps it and the RFC 3394 output."""

    kek_id: str
    wrapped: bytes


def wrap_new(keyring: Keyring) -> tuple[bytes, WrappedKey]:
    """Make a new DEK and wrap it under the keyring's active KEK.

    Returns ``(dek, WrappedKey)``; store the ``WrappedKey``, use and drop the DEK.
    """
    dek = new_dek()
    kek_id, wrapped = keyring.wrap(dek)
    return dek, WrappedKey(kek_id, wrapped)


def unwrap_dek(keyring: Keyring, wrapped_key: WrappedKey) -> bytes:
    """The plain DEK (raises :class:`~crypto.kek.UnknownKey` /
    :class:`~crypto.kek.KeyringError`)."""
    return keyring.unwrap(wrapped_key.kek_id, wrapped_key.wrapped)


def rewrap_dek(keyring: Keyring, wrapped_key: WrappedKey) -> WrappedKey:
    """Re-wrap a DEK under the active KEK without touching any ciphertext.

    Idempotent: a key already under the active KEK is returned unchanged, so a
    rotation job can be stopped and re-run safely.
    """
    if wrapped_key.kek_id == keyring.active_id:
        return wrapped_key
    dek = unwrap_dek(keyring, wrapped_key)
    kek_id, wrapped = keyring.wrap(dek)
    return WrappedKey(kek_id, wrapped)
