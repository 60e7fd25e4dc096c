"""Field encryption for short text columns (descriptions, message bodies,
internal notes).

Blob layout: ``0x01 | nonce[12] | AES-256-GCM(dek, nonce, utf8(text), AD)``
where the ciphertext carries its 16-byte tag and ``AD = 0x01 | aad``. The
caller's ``aad`` should name the record and column (e.g.
``b"report:42:description"``) so a blob cannot be moved to another place.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError, FormatError

__all__ = ["FIELD_VERSION", "seal", "unseal", "open_", "DecryptionError", "FormatError"]

FIELD_VERSION = 1
_VERSION_BYTE = bytes([FIELD_VERSION])
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_SIZE = 32


def _key(dek: bytes) -> AESGCM:
    if not isinstance(dek, (bytes, bytearray, memoryview)) or len(dek) != _KEY_SIZE:
        raise ValueError(f"dek must be {_KEY_SIZE} bytes")
    return AESGCM(bytes(dek))


def _check_aad(aad: bytes) -> bytes:
    if not isinstance(aad, (bytes, bytearray, memoryview)):
        raise TypeError("aad must be bytes")
    return bytes(aad)


def seal(dek: bytes, plaintext: str, aad: bytes, *, _nonce: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` (a str) bound to ``aad``. ``_nonce`` is for test
    vectors only."""
    if not isinstance(plaintext, str):
        raise TypeError("plaintext must be str")
    aead = _key(dek)
    aad = _check_aad(aad)
    nonce = secrets.token_bytes(_NONCE_SIZE) if _nonce is None else bytes(_nonce)
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    ct = aead.encrypt(nonce, plaintext.encode("utf-8"), _VERSION_BYTE + aad)
    return _VERSION_BYTE + nonce + ct


def unseal(dek: bytes, blob: bytes, aad: bytes) -> str:
    """Decrypt a blob made by :func:`seal`; :class:`DecryptionError` if it
    does not authenticate under ``dek`` and ``aad``."""
    aead = _key(dek)
    aad = _check_aad(aad)
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_SIZE + _TAG_SIZE:
        raise FormatError("field blob too short")
    if blob[0] != FIELD_VERSION:
        raise FormatError(f"unsupported field format version {blob[0]}")
    nonce = blob[1 : 1 + _NONCE_SIZE]
    try:
        data = aead.decrypt(nonce, blob[1 + _NONCE_SIZE :], _VERSION_BYTE + aad)
    except InvalidTag:
        raise DecryptionError("field does not authenticate (wrong key, wrong aad or tampered)") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("field plaintext is not UTF-8") from None


open_ = unseal
