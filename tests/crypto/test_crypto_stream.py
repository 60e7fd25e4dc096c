"""Attachment stream: fixed vectors, an independent reference implementation
written from crypto/FORMAT.md, and deterministic attack cases."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto import stream
from crypto.stream import (
    DecryptionError,
    FormatError,
    StreamEncryptor,
    StreamError,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
    header_size,
)

VECTORS = json.loads((Path(__file__).with_name("vectors.json")).read_text())["stream"]
DEK = bytes(range(32))
SALT = bytes(range(0x40, 0x60))
PREFIX = bytes.fromhex("a0a1a2a3a4a5a6")
AID = b"att-0001"


# --------------------------------------------------------------------------
# Reference implementation, written from FORMAT.md without the library.
# --------------------------------------------------------------------------
def ref_encrypt(
    dek: bytes,
    aid: bytes,
    seg: int,
    salt: bytes,
    nonce_prefix: bytes,
    plaintext: bytes,
    *,
    strip_last: bool = False,
    empty_tail: bool = False,
) -> bytes:
    prefix = (
        b"TTRA"
        + bytes([1, 1])
        + seg.to_bytes(4, "big")
        + salt
        + nonce_prefix
        + len(aid).to_bytes(2, "big")
        + aid
    )

    def hkdf(label: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt, label + b"\x00" + prefix).derive(dek)

    key = hkdf(b"TTRA-v1 segment key")
    header = prefix + hkdf(b"TTRA-v1 key commitment")
    ad = hashlib.sha256(header).digest()
    parts = [plaintext[i : i + seg] for i in range(0, len(plaintext), seg)] or [b""]
    if empty_tail:
        parts.append(b"")
    out = bytearray(header)
    for i, part in enumerate(parts):
        last = int(i == len(parts) - 1 and not strip_last)
        nonce = nonce_prefix + i.to_bytes(4, "big") + bytes([last])
        out += AESGCM(key).encrypt(nonce, part, ad)
    return bytes(out)


def pt(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


def enc(plaintext: bytes, seg: int = 16, aid: bytes = AID, dek: bytes = DEK, **kw) -> bytes:
    e = StreamEncryptor(dek, aid, seg, **kw)
    return e.header + e.update(plaintext) + e.finalize()


def dec(ct: bytes, aid: bytes = AID, dek: bytes = DEK, chunk: int | None = None) -> bytes:
    chunks = [ct] if chunk is None else [ct[i : i + chunk] for i in range(0, len(ct), chunk)]
    return b"".join(decrypt_stream(dek, aid, chunks))


def dec_partial(ct: bytes, aid: bytes = AID, dek: bytes = DEK):
    """(plaintext released before the error, the error)."""
    got = bytearray()
    with pytest.raises(DecryptionError) as info:
        for piece in decrypt_stream(dek, aid, [ct]):
            got += piece
    return bytes(got), info.value


def segments(ct: bytes, seg: int, aid: bytes = AID) -> tuple[bytes, list[bytes]]:
    h = header_size(len(aid))
    body = ct[h:]
    size = seg + 16
    return ct[:h], [body[i : i + size] for i in range(0, len(body), size)]


# --------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------
@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decrypts(v):
    ct = bytes.fromhex(v["ciphertext"])
    aid = bytes.fromhex(v["attachment_id"])
    dek = bytes.fromhex(v["dek"])
    assert b"".join(decrypt_stream(dek, aid, [ct])) == bytes.fromhex(v["plaintext"])
    # byte-at-a-time delivery too
    one = [ct[i : i + 1] for i in range(len(ct))]
    assert b"".join(decrypt_stream(dek, aid, one)) == bytes.fromhex(v["plaintext"])


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_reencrypts_identically(v):
    dek, aid = bytes.fromhex(v["dek"]), bytes.fromhex(v["attachment_id"])
    salt, prefix = bytes.fromhex(v["salt"]), bytes.fromhex(v["nonce_prefix"])
    plaintext = bytes.fromhex(v["plaintext"])
    e = StreamEncryptor(dek, aid, v["segment_size"], _salt=salt, _nonce_prefix=prefix)
    assert e.header.hex() == v["header"]
    ct = e.header + e.update(plaintext) + e.finalize()
    assert ct.hex() == v["ciphertext"]
    assert e.plaintext_sha256 == v["plaintext_sha256"]
    assert e.plaintext_size == len(plaintext)
    assert len(ct) == ciphertext_size(len(plaintext), v["segment_size"], len(e.header))
    key, commitment = stream._derive(dek, salt, e.header[:-32])
    assert key.hex() == v["segment_key"] and commitment.hex() == v["commitment"]
    assert hashlib.sha256(e.header).hexdigest() == v["header_hash"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_matches_reference_implementation(v):
    ct = ref_encrypt(
        bytes.fromhex(v["dek"]),
        bytes.fromhex(v["attachment_id"]),
        v["segment_size"],
        bytes.fromhex(v["salt"]),
        bytes.fromhex(v["nonce_prefix"]),
        bytes.fromhex(v["plaintext"]),
    )
    assert ct.hex() == v["ciphertext"]


def test_vectors_cover_the_edge_cases():
    sizes = {(len(v["plaintext"]) // 2, v["segment_size"]) for v in VECTORS}
    assert {(0, 16), (1, 16), (16, 16), (17, 16), (50, 16), (48, 16)} <= sizes


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 31, 32, 33, 100])
@pytest.mark.parametrize("chunk", [1, 5, 16, 17, 1000])
def test_reference_agrees_with_incremental_encryptor(n, chunk):
    data = os.urandom(n)
    e = StreamEncryptor(DEK, AID, 16, _salt=SALT, _nonce_prefix=PREFIX)
    out = bytearray(e.header)
    for i in range(0, n, chunk):
        out += e.update(data[i : i + chunk])
    out += e.finalize()
    assert bytes(out) == ref_encrypt(DEK, AID, 16, SALT, PREFIX, data)


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------
def test_header_layout():
    e = StreamEncryptor(DEK, b"abc", 4096, _salt=SALT, _nonce_prefix=PREFIX)
    h = e.header
    assert len(h) == header_size(3) == 86
    assert h[:4] == b"TTRA" and h[4] == 1 and h[5] == 1
    assert struct.unpack(">I", h[6:10])[0] == 4096
    assert h[10:42] == SALT and h[42:49] == PREFIX
    assert struct.unpack(">H", h[49:51])[0] == 3 and h[51:54] == b"abc"


def test_random_salt_and_prefix_differ_per_stream():
    a, b = StreamEncryptor(DEK, AID), StreamEncryptor(DEK, AID)
    assert a.header[10:49] != b.header[10:49]


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 48, 65536, 65537, 200000])
def test_ciphertext_size(n):
    for seg in (16, 65536):
        e = StreamEncryptor(DEK, AID, seg)
        ct = e.header + e.update(os.urandom(n)) + e.finalize()
        assert len(ct) == ciphertext_size(n, seg, len(e.header))


def test_default_segment_size_is_64k():
    e = StreamEncryptor(DEK, AID)
    assert e.segment_size == 65536
    assert struct.unpack(">I", e.header[6:10])[0] == 65536


# --------------------------------------------------------------------------
# Encryptor behaviour
# --------------------------------------------------------------------------
def test_update_holds_back_a_full_segment_until_more_data():
    e = StreamEncryptor(DEK, AID, 16, _salt=SALT, _nonce_prefix=PREFIX)
    assert e.update(pt(16)) == b""  # might be the last segment
    first = e.update(b"x")  # now it is known not to be
    assert len(first) == 32
    last = e.finalize()
    assert len(last) == 17
    assert e.header + first + last == ref_encrypt(DEK, AID, 16, SALT, PREFIX, pt(16) + b"x")


def test_exact_multiple_ends_with_full_flagged_segment():
    ct = enc(pt(48))
    _, segs = segments(ct, 16)
    assert [len(s) for s in segs] == [32, 32, 32]
    assert dec(ct) == pt(48)


def test_empty_plaintext_is_one_empty_last_segment():
    ct = enc(b"")
    assert len(ct) == header_size(len(AID)) + 16
    assert dec(ct) == b""
    assert list(decrypt_stream(DEK, AID, [ct])) == []


def test_accepts_bytearray_and_memoryview_input():
    data = bytearray(os.urandom(100))
    e = StreamEncryptor(DEK, AID, 16)
    ct = e.header + e.update(data[:40]) + e.update(memoryview(data)[40:]) + e.finalize()
    assert dec(ct) == bytes(data)
    assert b"".join(decrypt_stream(DEK, AID, [bytearray(ct[:50]), memoryview(ct)[50:]])) == data


def test_input_buffer_mutation_after_update_does_not_leak_into_output():
    data = bytearray(pt(20))
    e = StreamEncryptor(DEK, AID, 16)
    out = e.update(data)
    data[:] = bytes(20)
    ct = e.header + out + e.finalize()
    assert dec(ct) == pt(20)


def test_hash_and_size_only_after_finalize():
    e = StreamEncryptor(DEK, AID, 16)
    e.update(b"hello ")
    with pytest.raises(StreamError):
        e.plaintext_sha256
    with pytest.raises(StreamError):
        e.plaintext_size
    e.update(b"world")
    e.finalize()
    assert e.plaintext_sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert e.plaintext_size == 11
    with pytest.raises(StreamError):
        e.update(b"more")
    with pytest.raises(StreamError):
        e.finalize()


def test_encrypt_stream_yields_header_first_and_exposes_hash():
    chunks = [pt(10), b"", pt(30), pt(5)]
    it = encrypt_stream(DEK, AID, chunks, segment_size=16, _salt=SALT, _nonce_prefix=PREFIX)
    out = list(it)
    assert out[0] == it.encryptor.header
    whole = b"".join(chunks)
    assert b"".join(out) == ref_encrypt(DEK, AID, 16, SALT, PREFIX, whole)
    assert it.plaintext_sha256 == hashlib.sha256(whole).hexdigest()
    assert it.plaintext_size == len(whole)


def test_counter_overflow_is_refused():
    e = StreamEncryptor(DEK, AID, 16)
    e._counter = 2**32 - 1
    e.update(pt(16))  # held back
    e.update(b"x")  # emits segment 2**32 - 1 (non-last): still allowed
    with pytest.raises(StreamError, match="overflow"):
        e.finalize()  # would need segment number 2**32


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"dek": b"short"}, ValueError),
        ({"dek": "x" * 32}, TypeError),
        ({"attachment_id": b""}, ValueError),
        ({"attachment_id": "text"}, TypeError),
        ({"attachment_id": b"x" * 65536}, ValueError),
        ({"segment_size": 15}, ValueError),
        ({"segment_size": 16 * 1024 * 1024 + 1}, ValueError),
    ],
)
def test_encryptor_argument_checks(kwargs, exc):
    args = {"dek": DEK, "attachment_id": AID, "segment_size": 16, **kwargs}
    with pytest.raises(exc):
        StreamEncryptor(**args)


def test_segment_size_bounds_are_inclusive():
    for seg in (16, 16 * 1024 * 1024):
        e = StreamEncryptor(DEK, AID, seg)
        assert dec(e.header + e.update(b"abc") + e.finalize()) == b"abc"


def test_decrypt_argument_checks_are_eager():
    with pytest.raises(ValueError):
        decrypt_stream(b"short", AID, [])
    with pytest.raises(ValueError):
        decrypt_stream(DEK, b"", [])


# --------------------------------------------------------------------------
# Streaming behaviour of the decryptor
# --------------------------------------------------------------------------
def test_decrypt_is_incremental():
    data = os.urandom(16 * 50)
    ct = enc(data)
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(0, len(ct), 7):
            pulled += 1
            yield ct[i : i + 7]

    it = decrypt_stream(DEK, AID, source())
    first = next(it)
    assert first == data[:16]
    assert pulled * 7 < len(ct) // 4  # did not read the whole stream first
    assert first + b"".join(it) == data


def test_decrypt_authenticates_one_segment_at_a_time(monkeypatch):
    # Instrument the segment open to look at the size of what is passed in.
    sizes = []
    real = stream.AESGCM

    class Spy:
        def __init__(self, key):
            self._aead = real(key)

        def decrypt(self, nonce, data, ad):
            sizes.append(memoryview(data).nbytes)
            return self._aead.decrypt(nonce, data, ad)

    data = os.urandom(16 * 100 + 3)
    ct = enc(data)
    monkeypatch.setattr(stream, "AESGCM", Spy)
    assert dec(ct, chunk=1000) == data
    assert max(sizes) == 32 and len(sizes) == 101


def test_nothing_is_released_before_the_commitment_check():
    ct = bytearray(enc(pt(100)))
    ct[-100] ^= 1  # tamper late in the body so early segments are authentic
    got, _ = dec_partial(bytes(ct))
    assert pt(100).startswith(got) and len(got) % 16 == 0
    ct2 = bytearray(enc(pt(100)))
    ct2[header_size(len(AID)) - 1] ^= 1  # commitment byte
    got, err = dec_partial(bytes(ct2))
    assert got == b"" and "commitment" in str(err)


# --------------------------------------------------------------------------
# Attacks (deterministic)
# --------------------------------------------------------------------------
FIVE = pt(16 * 4 + 9)  # five segments, short last


def test_truncation_at_every_length_is_detected():
    ct = enc(FIVE)
    for cut in range(len(ct)):
        got, _ = dec_partial(ct[:cut])
        assert FIVE.startswith(got) and len(got) % 16 == 0 and len(got) < len(FIVE)


def test_truncation_at_segment_boundary_of_a_same_key_longer_stream():
    short = enc(pt(32), _salt=SALT, _nonce_prefix=PREFIX)
    long = enc(pt(48), _salt=SALT, _nonce_prefix=PREFIX)
    h = header_size(len(AID))
    # same header and first segment; `long`'s second segment is a valid
    # non-last segment where `short` has its flagged last one
    assert long[: h + 32] == short[: h + 32]
    assert long[: len(short)] != short
    got, _ = dec_partial(long[: len(short)])
    assert got == pt(16)


def test_extension_with_a_segment_from_a_same_key_longer_stream():
    short = enc(pt(32), _salt=SALT, _nonce_prefix=PREFIX)
    long = enc(pt(48), _salt=SALT, _nonce_prefix=PREFIX)
    _, long_segs = segments(long, 16)
    dec_partial(short + long_segs[2])


@pytest.mark.parametrize("extra_len", [1, 15, 16, 17, 33, 200])
def test_extension_with_appended_bytes(extra_len):
    dec_partial(enc(FIVE) + os.urandom(extra_len))
    dec_partial(enc(FIVE) + bytes(extra_len))


def test_extension_by_repeating_the_last_segment():
    ct = enc(pt(32))
    _, segs = segments(ct, 16)
    dec_partial(ct + segs[-1])


def test_extension_of_empty_stream():
    ct = enc(b"")
    _, segs = segments(ct, 16)
    dec_partial(ct + segs[0])


@pytest.mark.parametrize("i, j", [(0, 1), (1, 2), (0, 3), (2, 3)])
def test_reordering_two_segments(i, j):
    header, segs = segments(enc(pt(16 * 4 + 16)), 16)
    segs[i], segs[j] = segs[j], segs[i]
    dec_partial(header + b"".join(segs))


def test_dropping_a_middle_segment():
    header, segs = segments(enc(FIVE), 16)
    del segs[2]
    dec_partial(header + b"".join(segs))


def test_last_flag_stripped():
    ct = ref_encrypt(DEK, AID, 16, SALT, PREFIX, FIVE, strip_last=True)
    got, _ = dec_partial(ct)
    assert len(got) == 64  # the four full segments authenticate, the last does not
    assert ref_encrypt(DEK, AID, 16, SALT, PREFIX, FIVE) != ct


def test_last_flag_stripped_on_empty_stream():
    dec_partial(ref_encrypt(DEK, AID, 16, SALT, PREFIX, b"", strip_last=True))


def test_empty_final_segment_after_data_is_a_format_error():
    ct = ref_encrypt(DEK, AID, 16, SALT, PREFIX, pt(32), empty_tail=True)
    got, err = dec_partial(ct)
    assert isinstance(err, FormatError) and got == pt(32)


def test_every_single_bit_flip_is_detected():
    ct = enc(pt(20))  # header + 2 segments
    for pos in range(len(ct)):
        for bit in range(8):
            bad = bytearray(ct)
            bad[pos] ^= 1 << bit
            got, _ = dec_partial(bytes(bad))
            assert pt(20).startswith(got) and len(got) < 20


def test_wrong_key():
    got, err = dec_partial(enc(FIVE), dek=bytes(32))
    assert got == b"" and "commitment" in str(err)


def test_wrong_attachment_id():
    got, _ = dec_partial(enc(FIVE), aid=b"att-0002")
    assert got == b""
    got, _ = dec_partial(enc(FIVE), aid=AID + b"x")
    assert got == b""


def test_header_swapped_from_another_file_with_same_key_and_id():
    a = enc(FIVE)
    b = enc(pt(80))
    h = header_size(len(AID))
    got, _ = dec_partial(b[:h] + a[h:])
    assert got == b""


def test_whole_blob_swapped_between_records():
    blob_for_1 = enc(FIVE, aid=b"record-1")
    got, err = dec_partial(blob_for_1, aid=b"record-2")
    assert got == b"" and "attachment id" in str(err)


@pytest.mark.parametrize(
    "offset, value",
    [
        (0, b"XTRA"),  # magic
        (4, b"\x02"),  # version
        (5, b"\x02"),  # algorithm
        (6, (15).to_bytes(4, "big")),  # segment size below minimum
        (6, (16 * 1024 * 1024 + 1).to_bytes(4, "big")),  # above maximum
        (49, b"\x00\x00"),  # empty attachment id
    ],
)
def test_format_errors(offset, value):
    ct = bytearray(enc(FIVE))
    ct[offset : offset + len(value)] = value
    got, err = dec_partial(bytes(ct))
    assert isinstance(err, FormatError) and got == b""


@pytest.mark.parametrize("cut", [0, 1, 4, 50, 51, 58, header_size(len(AID)) - 1])
def test_truncated_header(cut):
    got, err = dec_partial(enc(FIVE)[:cut])
    assert isinstance(err, FormatError) and got == b""


def test_error_hierarchy():
    assert issubclass(DecryptionError, StreamError)
    assert issubclass(FormatError, StreamError)
    assert issubclass(FormatError, DecryptionError)
