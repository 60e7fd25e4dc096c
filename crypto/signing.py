"""Ed25519 signing for audit checkpoints and export manifests.

The private key lives in a 0600 PEM (PKCS#8, unencrypted) file kept apart
from the database; verifiers need only the public key PEM.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from . import _files

__all__ = ["SigningKeyError", "SigningKey", "verify", "key_id_of"]


class SigningKeyError(Exception):
    """The signing key file is missing, insecure, malformed or not Ed25519."""


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def _key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def _load_public(public_key_pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(bytes(public_key_pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("public key is not Ed25519")  # noqa: TRY004 - callers catch ValueError for any bad key
    return key


class SigningKey:
    """An Ed25519 private key. Build with :meth:`create`, :meth:`load` or
    (in memory, for tests) :meth:`generate`."""

    __slots__ = ("_private", "_public", "_key_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self._private = private_key
        self._public = private_key.public_key()
        self._key_id = _key_id(self._public)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> "SigningKey":
        """Generate a key and write it as PEM PKCS#8 to a new 0600 file
        (``O_EXCL``: an existing file is refused)."""
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
        try:
            _files.create_private(path, pem)
        except FileExistsError:
            raise SigningKeyError(f"{os.fspath(path)}: already exists; refusing to overwrite") from None
        except OSError as exc:
            raise SigningKeyError(f"{os.fspath(path)}: cannot create key: {exc.strerror}") from None
        return cls(private)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SigningKey":
        """Load a key file, refusing one accessible to group or others."""
        try:
            pem, _ = _files.read_private(path)
        except _files.InsecureFileError as exc:
            raise SigningKeyError(str(exc)) from None
        except OSError as exc:
            raise SigningKeyError(f"{os.fspath(path)}: cannot read key: {exc.strerror}") from None
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SigningKeyError(f"{os.fspath(path)}: not an unencrypted PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningKeyError(f"{os.fspath(path)}: key is not Ed25519")
        return cls(private)

    def sign(self, data: bytes) -> bytes:
        """64-byte Ed25519 signature of ``data``."""
        return self._private.sign(bytes(data))

    def public_key_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM of the public key."""
        return self._public.public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    def public_key_raw(self) -> bytes:
        """The 32-byte raw public key."""
        return _raw_public(self._public)

    @property
    def key_id(self) -> str:
        """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
        return self._key_id

    def __repr__(self) -> str:
        return f"<SigningKey key_id={self._key_id}>"


def key_id_of(public_key_pem: bytes) -> str:
    """The :attr:`SigningKey.key_id` of a public key given as PEM."""
    return _key_id(_load_public(public_key_pem))


def verify(public_key_pem: bytes, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``data``.

    An invalid signature returns False; a public key that is not an Ed25519
    PEM raises ``ValueError`` (a configuration error, not a forgery).
    """
    key = _load_public(public_key_pem)
    try:
        key.verify(bytes(signature), bytes(data))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
