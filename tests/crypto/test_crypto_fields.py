"""Field encryption for short text columns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import DecryptionError, FormatError
from crypto.fields import open_, seal, unseal

VECTORS = json.loads(Path(__file__).with_name("vectors.json").read_text())["fields"]
DEK = os.urandom(32)
AAD = b"report:42:description"


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors(v):
    dek, aad = bytes.fromhex(v["dek"]), bytes.fromhex(v["aad"])
    text = bytes.fromhex(v["plaintext_utf8"]).decode()
    blob = bytes.fromhex(v["blob"])
    assert unseal(dek, blob, aad) == text
    assert seal(dek, text, aad, _nonce=bytes.fromhex(v["nonce"])) == blob
    assert blob[0] == 1 and blob[1:13].hex() == v["nonce"]
    assert len(blob) == 29 + len(text.encode())


@settings(max_examples=50, deadline=None, database=None)
@given(text=st.text(max_size=200), aad=st.binary(max_size=40))
def test_round_trip(text, aad):
    assert unseal(DEK, seal(DEK, text, aad), aad) == text


def test_fresh_nonce_each_time():
    assert seal(DEK, "same", AAD) != seal(DEK, "same", AAD)


def test_open_alias():
    assert open_(DEK, seal(DEK, "x", AAD), AAD) == "x"


def test_wrong_aad_and_wrong_key():
    blob = seal(DEK, "機密の説明", AAD)
    with pytest.raises(DecryptionError):
        unseal(DEK, blob, b"report:43:description")
    with pytest.raises(DecryptionError):
        unseal(os.urandom(32), blob, AAD)


def test_every_bit_flip_is_rejected():
    blob = seal(DEK, "short note", AAD)
    for pos in range(len(blob)):
        for bit in range(8):
            bad = bytearray(blob)
            bad[pos] ^= 1 << bit
            with pytest.raises(DecryptionError):
                unseal(DEK, bytes(bad), AAD)


def test_truncated_and_unknown_version():
    blob = seal(DEK, "", AAD)
    with pytest.raises(FormatError):
        unseal(DEK, blob[:-1], AAD)
    with pytest.raises(FormatError):
        unseal(DEK, b"\x02" + blob[1:], AAD)


def test_argument_checks():
    with pytest.raises(TypeError):
        seal(DEK, b"bytes", AAD)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        seal(b"short", "x", AAD)
    with pytest.raises(TypeError):
        seal(DEK, "x", "aad")  # type: ignore[arg-type]
