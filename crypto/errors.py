"""Exception types shared by the stream and field formats."""

from __future__ import annotations

__all__ = ["StreamError", "DecryptionError", "FormatError"]


class StreamError(Exception):
    """Base class for every error raised while encrypting or decrypting."""


class DecryptionError(StreamError):
    """The ciphertext cannot be released: wrong key, wrong attachment id or
    associated data, tampering, truncation, extension or reordering.

    Callers that serve plaintext should catch this one class and abort.
    """


class FormatError(DecryptionError):
    """The input is not a well-formed blob of a format and version we know
    (bad magic, unknown version or algorithm, out-of-range field).

    It is a subclass of :class:`DecryptionError` (and so of
    :class:`StreamError`): a corrupted header is one more reason not to
    release plaintext, and ``except DecryptionError`` covers it.
    """
