"""Envelope encryption: DEKs wrapped by the keyring, rotation by re-wrapping."""

from __future__ import annotations

import dataclasses

import pytest

import crypto
from crypto.envelope import WrappedKey, new_dek, rewrap_dek, unwrap_dek, wrap_new
from crypto.kek import FileKeyring, MemoryKeyring, UnknownKey


def test_new_dek_is_32_random_bytes():
    a, b = new_dek(), new_dek()
    assert len(a) == 32 and a != b


def test_wrap_new_and_unwrap():
    kr = MemoryKeyring()
    dek, wk = wrap_new(kr)
    assert len(dek) == 32 and wk.kek_id == kr.active_id
    assert unwrap_dek(kr, wk) == dek
    with pytest.raises(dataclasses.FrozenInstanceError):
        wk.kek_id = "other"  # type: ignore[misc]


def test_rewrap_is_idempotent_and_moves_to_the_active_key(tmp_path):
    kr = FileKeyring.create(tmp_path / "k.json")
    dek, wk = wrap_new(kr)
    assert rewrap_dek(kr, wk) is wk  # already under the active key
    old = wk.kek_id
    kr.rotate()
    moved = rewrap_dek(kr, wk)
    assert moved.kek_id == kr.active_id != old
    assert unwrap_dek(kr, moved) == dek
    assert rewrap_dek(kr, moved) == moved
    kr.retire(old)
    assert unwrap_dek(kr, moved) == dek
    with pytest.raises(UnknownKey):
        unwrap_dek(kr, wk)


def test_envelope_with_stream_end_to_end():
    kr = MemoryKeyring()
    dek, wk = wrap_new(kr)
    stored_wk = WrappedKey(wk.kek_id, wk.wrapped)
    it = crypto.encrypt_stream(dek, b"attachment:1", [b"hello ", b"world"], segment_size=16)
    blob = b"".join(it)
    assert b"".join(crypto.decrypt_stream(unwrap_dek(kr, stored_wk), b"attachment:1", [blob])) == b"hello world"


def test_package_exports():
    for name in crypto.__all__:
        assert hasattr(crypto, name), name


def test_package_imports_nothing_of_the_web_app():
    import subprocess
    import sys

    code = (
        "import sys, crypto, crypto.kek, crypto.envelope, crypto.stream, "
        "crypto.fields, crypto.signing\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'sqlalchemy', 'portal', 'werkzeug', 'jinja2')]\n"
        "assert not bad, bad\n"
    )
    root = __import__("pathlib").Path(crypto.__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
