"""Streaming AEAD for attachments ("TTRA" format, version 1).

Design after Tink's AES-GCM-HKDF streaming, the AWS Encryption SDK framed body
and age's STREAM construction. The byte-level specification is in FORMAT.md;
in short::

    header  = "TTRA" | 0x01 | alg 0x01 | segment_size u32 | salt[32]
              | nonce_prefix[7] | len(attachment_id) u16 | attachment_id
              | commitment[32]
    prefix  = header without the commitment
    key     = HKDF-SHA256(DEK, salt, "TTRA-v1 segment key\\0"  || prefix)[32]
    commit  = HKDF-SHA256(DEK, salt, "TTRA-v1 key commitment\\0" || prefix)[32]
    AD      = SHA-256(header)
    segment i = AES-256-GCM(key, nonce_prefix | i u32 | last u8, plaintext_i, AD)

Every segment but the last holds exactly ``segment_size`` plaintext bytes;
the last one is flagged and holds 1..segment_size bytes, or 0 bytes when the
whole plaintext is empty (then it is the only segment).

Memory use is bounded by one segment plus one caller-supplied chunk.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from typing import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import DecryptionError, FormatError, StreamError

__all__ = [
    "StreamError",
    "DecryptionError",
    "FormatError",
    "StreamEncryptor",
    "encrypt_stream",
    "decrypt_stream",
    "ciphertext_size",
    "header_size",
    "MAGIC",
    "VERSION",
    "ALG_AES256GCM_HKDF_SHA256",
    "DEFAULT_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "MAX_SEGMENT_SIZE",
    "TAG_SIZE",
]

MAGIC = b"TTRA"
VERSION = 1
ALG_AES256GCM_HKDF_SHA256 = 1
DEK_SIZE = 32
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
COMMITMENT_SIZE = 32
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_ATTACHMENT_ID_SIZE = 0xFFFF
MAX_SEGMENTS = 1 << 32  # counter is a u32: segments 0 .. 2**32-1

SEGMENT_KEY_INFO = b"TTRA-v1 segment key\x00"
COMMITMENT_INFO = b"TTRA-v1 key commitment\x00"

# magic, version, algorithm, segment size, salt, nonce prefix, attachment id length
_FIXED = struct.Struct(">4sBBI32s7sH")
FIXED_HEADER_SIZE = _FIXED.size  # 51
_CTR_FLAG = struct.Struct(">IB")


def header_size(attachment_id_len: int) -> int:
    """Length of a version-1 header for an attachment id of that length."""
    return FIXED_HEADER_SIZE + attachment_id_len + COMMITMENT_SIZE


def ciphertext_size(plaintext_size: int, segment_size: int, header_len: int) -> int:
    """Exact ciphertext length for ``plaintext_size`` bytes (``header_len`` is
    ``len(encryptor.header)`` or :func:`header_size`)."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size must be >= 0")
    _check_segment_size(segment_size, ValueError)
    segments = max(1, -(-plaintext_size // segment_size))
    return header_len + plaintext_size + segments * TAG_SIZE


def _check_segment_size(segment_size: int, exc: type[Exception]) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise exc(
            f"segment size {segment_size} outside {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE}"
        )


def _check_dek(dek: bytes) -> bytes:
    if not isinstance(dek, (bytes, bytearray, memoryview)):
        raise TypeError("dek must be bytes")
    dek = bytes(dek)
    if len(dek) != DEK_SIZE:
        raise ValueError(f"dek must be {DEK_SIZE} bytes")
    return dek


def _check_attachment_id(attachment_id: bytes) -> bytes:
    if not isinstance(attachment_id, (bytes, bytearray, memoryview)):
        raise TypeError("attachment_id must be bytes")
    attachment_id = bytes(attachment_id)
    if not 1 <= len(attachment_id) <= MAX_ATTACHMENT_ID_SIZE:
        raise ValueError(f"attachment_id must be 1..{MAX_ATTACHMENT_ID_SIZE} bytes")
    return attachment_id


def _derive(dek: bytes, salt: bytes, prefix: bytes) -> tuple[bytes, bytes]:
    """(segment key, key commitment) for a header ``prefix`` (all header
    bytes before the commitment)."""

    def hkdf(label: bytes) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=salt, info=label + prefix
        ).derive(dek)

    return hkdf(SEGMENT_KEY_INFO), hkdf(COMMITMENT_INFO)


def _as_bytes_view(data: object) -> memoryview:
    view = memoryview(data)  # type: ignore[arg-type]
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class StreamEncryptor:
    """Incremental encryptor. Write :attr:`header`, then every ``update``
    result, then ``finalize()``::

        enc = StreamEncryptor(dek, b"attachment-42")
        out.write(enc.header)
        for chunk in upload:
            out.write(enc.update(chunk))
        out.write(enc.finalize())
        record(enc.plaintext_sha256, enc.plaintext_size)

    ``update`` keeps at most one segment of plaintext back: a full segment is
    only emitted once more input proves it is not the last one.
    ``_salt``/``_nonce_prefix`` exist for test vectors only; never pass them
    in production (reusing them with the same DEK is catastrophic).
    """

    __slots__ = (
        "_aead",
        "_buf",
        "_counter",
        "_done",
        "_hash",
        "_header",
        "_header_hash",
        "_nonce_prefix",
        "_seg",
        "_size",
        "_digest",
    )

    def __init__(
        self,
        dek: bytes,
        attachment_id: bytes,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        *,
        _salt: bytes | None = None,
        _nonce_prefix: bytes | None = None,
    ) -> None:
        dek = _check_dek(dek)
        attachment_id = _check_attachment_id(attachment_id)
        if not isinstance(segment_size, int) or isinstance(segment_size, bool):
            raise TypeError("segment_size must be an int")
        _check_segment_size(segment_size, ValueError)
        salt = secrets.token_bytes(SALT_SIZE) if _salt is None else bytes(_salt)
        nonce_prefix = (
            secrets.token_bytes(NONCE_PREFIX_SIZE)
            if _nonce_prefix is None
            else bytes(_nonce_prefix)
        )
        if len(salt) != SALT_SIZE or len(nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError("bad salt or nonce prefix length")
        prefix = (
            _FIXED.pack(
                MAGIC,
                VERSION,
                ALG_AES256GCM_HKDF_SHA256,
                segment_size,
                salt,
                nonce_prefix,
                len(attachment_id),
            )
            + attachment_id
        )
        key, commitment = _derive(dek, salt, prefix)
        self._header = prefix + commitment
        self._header_hash = hashlib.sha256(self._header).digest()
        self._aead = AESGCM(key)
        self._nonce_prefix = nonce_prefix
        self._seg = segment_size
        self._buf = bytearray()
        self._counter = 0
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False
        self._digest: str | None = None

    @property
    def header(self) -> bytes:
        """The header; it must precede the segments."""
        return self._header

    @property
    def segment_size(self) -> int:
        return self._seg

    def _seal(self, data: bytes | bytearray | memoryview, last: int) -> bytes:
        counter = self._counter
        if counter >= MAX_SEGMENTS:
            raise StreamError("segment counter overflow: stream too long for this segment size")
        self._counter = counter + 1
        return self._aead.encrypt(
            self._nonce_prefix + _CTR_FLAG.pack(counter, last), data, self._header_hash
        )

    def update(self, data: bytes) -> bytes:
        """Feed plaintext; return the ciphertext of the segments now complete
        (possibly ``b""``)."""
        if self._done:
            raise StreamError("update() after finalize()")
        view = _as_bytes_view(data)
        n = view.nbytes
        if not n:
            return b""
        self._hash.update(view)
        self._size += n
        seg = self._seg
        buf = self._buf
        out: list[bytes] = []
        pos = 0
        if buf:
            room = seg - len(buf)
            if room:
                pos = room if room < n else n
                buf += view[:pos]
                if pos == n:
                    return b""  # everything fitted; the segment may be the last
            # buf holds a full segment and more data follows: it is not the last
            out.append(self._seal(buf, 0))
            buf.clear()
        while n - pos > seg:
            end = pos + seg
            out.append(self._seal(view[pos:end], 0))
            pos = end
        buf += view[pos:]  # 1..seg bytes held back
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def finalize(self) -> bytes:
        """Emit the last (flagged) segment; afterwards :attr:`plaintext_sha256`
        and :attr:`plaintext_size` are available."""
        if self._done:
            raise StreamError("finalize() called twice")
        out = self._seal(self._buf, 1)
        self._buf.clear()
        self._done = True
        self._digest = self._hash.hexdigest()
        return out

    @property
    def plaintext_sha256(self) -> str:
        """Hex SHA-256 of all plaintext fed (after :meth:`finalize`)."""
        if self._digest is None:
            raise StreamError("plaintext_sha256 is available after finalize()")
        return self._digest

    @property
    def plaintext_size(self) -> int:
        """Total plaintext bytes fed (after :meth:`finalize`)."""
        if not self._done:
            raise StreamError("plaintext_size is available after finalize()")
        return self._size

    def __repr__(self) -> str:
        return f"<StreamEncryptor segment_size={self._seg} done={self._done}>"


class _EncryptingIterator:
    """Iterator returned by :func:`encrypt_stream`; after exhaustion it exposes
    the encryptor's ``plaintext_sha256`` and ``plaintext_size``."""

    def __init__(self, encryptor: StreamEncryptor, chunks: Iterable[bytes]) -> None:
        self.encryptor = encryptor
        self._gen = self._run(iter(chunks))

    def _run(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        enc = self.encryptor
        yield enc.header
        for chunk in chunks:
            out = enc.update(chunk)
            if out:
                yield out
        yield enc.finalize()

    def __iter__(self) -> "_EncryptingIterator":
        return self

    def __next__(self) -> bytes:
        return next(self._gen)

    @property
    def plaintext_sha256(self) -> str:
        return self.encryptor.plaintext_sha256

    @property
    def plaintext_size(self) -> int:
        return self.encryptor.plaintext_size


def encrypt_stream(
    dek: bytes,
    attachment_id: bytes,
    chunks: Iterable[bytes],
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    **_test_only: bytes,
) -> Iterator[bytes]:
    """Yield the header, then the ciphertext segments of ``chunks``.

    The returned iterator has ``plaintext_sha256``/``plaintext_size``
    attributes once it is exhausted (and ``.encryptor``).
    """
    return _EncryptingIterator(
        StreamEncryptor(dek, attachment_id, segment_size, **_test_only), chunks
    )


def decrypt_stream(
    dek: bytes, attachment_id: bytes, chunks: Iterable[bytes]
) -> Iterator[bytes]:
    """Yield the plaintext of each segment once it has authenticated.

    Before any plaintext: the header is parsed (magic, version, algorithm,
    segment size), its attachment id compared with ``attachment_id`` and the
    key commitment recomputed and compared in constant time. Raises
    :class:`DecryptionError` (or its subclass :class:`FormatError`) on any
    failure, including truncation and trailing data; plaintext already
    yielded belongs to authenticated, correctly ordered segments, but the
    caller must treat the whole object as failed (abort the response).
    Arguments are checked eagerly (``ValueError``/``TypeError``).
    """
    dek = _check_dek(dek)
    attachment_id = _check_attachment_id(attachment_id)
    return _decrypt(dek, attachment_id, iter(chunks))


def _read_at_least(buf: bytearray, need: int, chunks: Iterator[bytes]) -> bool:
    while len(buf) < need:
        try:
            chunk = next(chunks)
        except StopIteration:
            return False
        buf += _as_bytes_view(chunk)
    return True


def _decrypt(dek: bytes, attachment_id: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    # ---- header ---------------------------------------------------------
    head = bytearray()
    if not _read_at_least(head, FIXED_HEADER_SIZE, chunks):
        raise FormatError("truncated header")
    magic, version, alg, seg, salt, nonce_prefix, id_len = _FIXED.unpack_from(head)
    if magic != MAGIC:
        raise FormatError("not a TTRA stream (bad magic)")
    if version != VERSION:
        raise FormatError(f"unsupported stream version {version}")
    if alg != ALG_AES256GCM_HKDF_SHA256:
        raise FormatError(f"unsupported algorithm {alg}")
    _check_segment_size(seg, FormatError)
    if id_len == 0:
        raise FormatError("empty attachment id")
    hlen = FIXED_HEADER_SIZE + id_len + COMMITMENT_SIZE
    if not _read_at_least(head, hlen, chunks):
        raise FormatError("truncated header")
    prefix = bytes(head[: hlen - COMMITMENT_SIZE])
    stored_commitment = bytes(head[hlen - COMMITMENT_SIZE : hlen])
    if not hmac.compare_digest(prefix[FIXED_HEADER_SIZE:], attachment_id):
        raise DecryptionError("attachment id mismatch: blob belongs to another record")
    key, commitment = _derive(dek, salt, prefix)
    if not hmac.compare_digest(commitment, stored_commitment):
        raise DecryptionError("key commitment mismatch: wrong key or corrupted header")
    header_hash = hashlib.sha256(prefix + stored_commitment).digest()
    leftover = bytes(head[hlen:])
    del head

    # ---- segments -------------------------------------------------------
    aead = AESGCM(key)
    ct_seg = seg + TAG_SIZE
    counter = 0

    def open_segment(data: bytes | bytearray | memoryview, last: int) -> bytes:
        nonlocal counter
        if counter >= MAX_SEGMENTS:
            raise DecryptionError("segment counter overflow")
        nonce = nonce_prefix + _CTR_FLAG.pack(counter, last)
        try:
            plaintext = aead.decrypt(nonce, data, header_hash)
        except InvalidTag:
            raise DecryptionError(
                f"segment {counter} failed to authenticate "
                "(tampered, reordered, truncated or extended stream)"
            ) from None
        counter += 1
        return plaintext

    buf = bytearray()  # pending ciphertext, never more than one segment
    first = [leftover] if leftover else []
    for source in (first, chunks):
        for chunk in source:
            view = _as_bytes_view(chunk)
            n = view.nbytes
            if not n:
                continue
            pos = 0
            if buf:
                room = ct_seg - len(buf)
                if room:
                    pos = room if room < n else n
                    buf += view[:pos]
                    if pos == n:
                        continue
                plaintext = open_segment(buf, 0)
                buf.clear()
                yield plaintext
            while n - pos > ct_seg:
                end = pos + ct_seg
                plaintext = open_segment(view[pos:end], 0)
                pos = end
                yield plaintext
            buf += view[pos:]

    # ---- the last segment -----------------------------------------------
    if len(buf) < TAG_SIZE:
        raise DecryptionError("truncated stream: final segment missing or incomplete")
    plaintext = open_segment(buf, 1)
    if not plaintext and counter > 1:
        raise FormatError("empty final segment after data segments")
    if plaintext:
        yield plaintext
