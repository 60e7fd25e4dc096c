"""Encryption at rest for the portal (DESIGN §7).

A self-contained library: the standard library and ``cryptography`` (and pyHanko for the
notice's PDF signature), nothing of Flask, the database or the web app. Byte formats: FORMAT.md.

- :mod:`crypto.kek`  — KEKs; :class:`FileKeyring` (0600 JSON file), :class:`MemoryKeyring`
- :mod:`crypto.envelope` — per-object DEKs wrapped by the keyring
- :mod:`crypto.stream`   — streaming AEAD for attachments ("TTRA" v1)
- :mod:`crypto.fields`   — AES-256-GCM for short text columns
- :mod:`crypto.signing`  — Ed25519 for the audit trail
- :mod:`crypto.pades`, :mod:`crypto.notice_pki`, :mod:`crypto.notice_verify` — the official
  notice's PAdES signature, its certificates, and the offline verifier
"""

from .envelope import DEK_SIZE, WrappedKey, new_dek, rewrap_dek, unwrap_dek, wrap_new
from .errors import DecryptionError, FormatError, StreamError
from .fields import seal, unseal
from .kek import (
    FileKeyring,
    KeyInUse,
    Keyring,
    KeyringError,
    MemoryKeyring,
    UnknownKey,
)
from .signing import SigningKey, SigningKeyError, key_id_of, verify
from .signing import verify as verify_signature
from .stream import (
    DEFAULT_SEGMENT_SIZE,
    StreamEncryptor,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
    header_size,
)

__all__ = [
    # keyring
    "Keyring",
    "FileKeyring",
    "MemoryKeyring",
    "KeyringError",
    "UnknownKey",
    "KeyInUse",
    # envelope
    "DEK_SIZE",
    "new_dek",
    "WrappedKey",
    "wrap_new",
    "unwrap_dek",
    "rewrap_dek",
    # stream
    "DEFAULT_SEGMENT_SIZE",
    "StreamEncryptor",
    "encrypt_stream",
    "decrypt_stream",
    "ciphertext_size",
    "header_size",
    "StreamError",
    "DecryptionError",
    "FormatError",
    # fields
    "seal",
    "unseal",
    # signing
    "SigningKey",
    "SigningKeyError",
    "verify",
    "verify_signature",
    "key_id_of",
]
