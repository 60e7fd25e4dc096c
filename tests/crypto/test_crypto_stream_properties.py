"""Property tests for the attachment stream (hypothesis)."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.stream import (
    DecryptionError,
    StreamEncryptor,
    ciphertext_size,
    decrypt_stream,
    header_size,
)
from crypto.stream import _derive

# No example database: the tests must not write into the repository.
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEGMENT_SIZES = st.sampled_from([16, 17, 32, 64, 100])
KEYS = st.binary(min_size=32, max_size=32)
IDS = st.binary(min_size=1, max_size=40)


@st.composite
def plaintext_for(draw, seg: int) -> bytes:
    """Sizes around the interesting boundaries, plus arbitrary ones."""
    k = draw(st.integers(1, 6))
    n = draw(
        st.sampled_from([0, 1, seg - 1, seg, seg + 1, k * seg, k * seg - 1, k * seg + 1])
        | st.integers(0, 8 * seg)
    )
    return os.urandom(n) if n > 64 else draw(st.binary(min_size=n, max_size=n))


def split(data, blob: bytes) -> list[bytes]:
    """Cut ``blob`` at random places (empty pieces allowed)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=12)))
    bounds = [0, *cuts, len(blob)]
    return [blob[a:b] for a, b in zip(bounds, bounds[1:])]


def encrypt(dek: bytes, aid: bytes, seg: int, chunks: list[bytes]) -> tuple[bytes, StreamEncryptor]:
    e = StreamEncryptor(dek, aid, seg)
    out = bytearray(e.header)
    for c in chunks:
        out += e.update(c)
    out += e.finalize()
    return bytes(out), e


def decrypt_partial(dek: bytes, aid: bytes, chunks) -> tuple[bytes, Exception | None]:
    got = bytearray()
    try:
        for piece in decrypt_stream(dek, aid, chunks):
            got += piece
    except DecryptionError as exc:
        return bytes(got), exc
    return bytes(got), None


@st.composite
def cases(draw):
    seg = draw(SEGMENT_SIZES)
    return draw(KEYS), draw(IDS), seg, draw(plaintext_for(seg))


@SETTINGS
@given(case=cases(), data=st.data())
def test_round_trip_with_random_chunking(case, data):
    dek, aid, seg, plaintext = case
    ct, e = encrypt(dek, aid, seg, split(data, plaintext))
    assert len(ct) == ciphertext_size(len(plaintext), seg, header_size(len(aid)))
    assert e.plaintext_size == len(plaintext)
    got = list(decrypt_stream(dek, aid, split(data, ct)))
    assert b"".join(got) == plaintext
    # every released piece is exactly one segment (only the last may be short)
    assert all(len(p) == seg for p in got[:-1])


@SETTINGS
@given(case=cases(), data=st.data())
def test_chunking_does_not_change_the_ciphertext_length_or_segments(case, data):
    dek, aid, seg, plaintext = case
    a, _ = encrypt(dek, aid, seg, [plaintext])
    b, _ = encrypt(dek, aid, seg, split(data, plaintext))
    assert len(a) == len(b)


def _assert_rejected(dek, aid, seg, plaintext, tampered, data, *, released_limit=None):
    got, err = decrypt_partial(dek, aid, split(data, tampered))
    assert err is not None, "tampered stream was accepted"
    # whatever was released is an authentic, segment-aligned prefix
    assert plaintext.startswith(got)
    assert len(got) % seg == 0
    if released_limit is not None:
        assert len(got) <= released_limit


@SETTINGS
@given(case=cases(), data=st.data())
def test_any_truncation_is_rejected(case, data):
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    h = header_size(len(aid))
    nseg = max(1, -(-len(plaintext) // seg))
    boundaries = [h + i * (seg + 16) for i in range(nseg)]
    cut = data.draw(st.sampled_from(boundaries) | st.integers(0, len(ct) - 1))
    _assert_rejected(dek, aid, seg, plaintext, ct[:cut], data)


@SETTINGS
@given(case=cases(), data=st.data())
def test_appended_bytes_are_rejected(case, data):
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    extra = data.draw(st.binary(min_size=1, max_size=2 * seg + 40))
    _assert_rejected(dek, aid, seg, plaintext, ct + extra, data)


@SETTINGS
@given(case=cases(), data=st.data())
def test_appended_segment_is_rejected(case, data):
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    h = header_size(len(aid))
    body = ct[h:]
    segs = [body[i : i + seg + 16] for i in range(0, len(body), seg + 16)]
    extra = data.draw(st.sampled_from(segs))
    _assert_rejected(dek, aid, seg, plaintext, ct + extra, data)


@SETTINGS
@given(seg=SEGMENT_SIZES, dek=KEYS, aid=IDS, data=st.data())
def test_reordering_two_segments_is_rejected(seg, dek, aid, data):
    n = data.draw(st.integers(2, 6)) * seg + data.draw(st.integers(0, seg - 1))
    plaintext = os.urandom(n)
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    h = header_size(len(aid))
    body = ct[h:]
    segs = [body[i : i + seg + 16] for i in range(0, len(body), seg + 16)]
    i, j = data.draw(
        st.lists(st.integers(0, len(segs) - 1), min_size=2, max_size=2, unique=True)
    )
    i, j = min(i, j), max(i, j)
    segs[i], segs[j] = segs[j], segs[i]
    _assert_rejected(dek, aid, seg, plaintext, ct[:h] + b"".join(segs), data, released_limit=i * seg)


@SETTINGS
@given(case=cases(), data=st.data())
def test_any_bit_flip_is_rejected(case, data):
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    h = header_size(len(aid))
    pos = data.draw(st.integers(0, len(ct) - 1) | st.integers(0, h - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(ct)
    bad[pos] ^= 1 << bit
    # nothing from the flipped segment (or anything after it) is released
    limit = 0 if pos < h else ((pos - h) // (seg + 16)) * seg
    _assert_rejected(dek, aid, seg, plaintext, bytes(bad), data, released_limit=limit)


@SETTINGS
@given(case=cases(), other=KEYS, data=st.data())
def test_wrong_key_is_rejected_before_any_plaintext(case, other, data):
    dek, aid, seg, plaintext = case
    if other == dek:
        other = bytes(b ^ 1 for b in dek)
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    _assert_rejected(other, aid, seg, plaintext, ct, data, released_limit=0)


@SETTINGS
@given(case=cases(), other=IDS, data=st.data())
def test_wrong_attachment_id_is_rejected_before_any_plaintext(case, other, data):
    dek, aid, seg, plaintext = case
    if other == aid:
        other = aid + b"\x00"
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    _assert_rejected(dek, other, seg, plaintext, ct, data, released_limit=0)


@SETTINGS
@given(case=cases(), data=st.data())
def test_header_from_another_file_is_rejected(case, data):
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    other = data.draw(plaintext_for(seg))
    ct2, _ = encrypt(dek, aid, seg, [other])  # same key, same id, fresh salt
    h = header_size(len(aid))
    _assert_rejected(dek, aid, seg, plaintext, ct2[:h] + ct[h:], data, released_limit=0)


@SETTINGS
@given(case=cases(), data=st.data())
def test_last_flag_stripped_is_rejected(case, data):
    """Re-encrypt the final segment as a non-final one (an attacker holding
    the DEK could; this checks the decoder insists on the flag)."""
    dek, aid, seg, plaintext = case
    ct, _ = encrypt(dek, aid, seg, [plaintext])
    h = header_size(len(aid))
    header, body = ct[:h], ct[h:]
    segs = [body[i : i + seg + 16] for i in range(0, len(body), seg + 16)]
    key, _ = _derive(dek, header[10:42], header[:-32])
    aead, ad, prefix = AESGCM(key), hashlib.sha256(header).digest(), header[42:49]
    last = len(segs) - 1
    tail = aead.decrypt(prefix + last.to_bytes(4, "big") + b"\x01", segs[-1], ad)
    segs[-1] = aead.encrypt(prefix + last.to_bytes(4, "big") + b"\x00", tail, ad)
    _assert_rejected(
        dek, aid, seg, plaintext, header + b"".join(segs), data, released_limit=last * seg
    )
