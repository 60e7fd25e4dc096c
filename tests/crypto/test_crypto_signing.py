"""Ed25519 signing keys for the audit trail."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.signing import SigningKey, SigningKeyError, key_id_of, verify


def test_create_is_0600_and_refuses_existing(tmp_path):
    path = tmp_path / "audit.pem"
    old = os.umask(0)
    try:
        key = SigningKey.create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    with pytest.raises(SigningKeyError, match="exists"):
        SigningKey.create(path)
    assert SigningKey.load(path).public_key_pem() == key.public_key_pem()


@pytest.mark.parametrize("perm", [0o644, 0o640, 0o604])
def test_load_refuses_group_or_other_readable(tmp_path, perm):
    path = tmp_path / "audit.pem"
    SigningKey.create(path)
    os.chmod(path, perm)
    with pytest.raises(SigningKeyError, match="too open"):
        SigningKey.load(path)


def test_load_refuses_non_ed25519_and_garbage(tmp_path):
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for name, content in [("ec.pem", ec_pem), ("junk.pem", b"junk")]:
        p = tmp_path / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(SigningKeyError):
            SigningKey.load(p)
    with pytest.raises(SigningKeyError):
        SigningKey.load(tmp_path / "missing.pem")


def test_sign_and_verify():
    key = SigningKey.generate()
    sig = key.sign(b"checkpoint 42")
    assert len(sig) == 64
    pem = key.public_key_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert verify(pem, sig, b"checkpoint 42")
    assert not verify(pem, sig, b"checkpoint 43")
    bad = bytearray(sig)
    bad[0] ^= 1
    assert not verify(pem, bytes(bad), b"checkpoint 42")
    assert not verify(pem, sig[:-1], b"checkpoint 42")
    assert not verify(SigningKey.generate().public_key_pem(), sig, b"checkpoint 42")


def test_verify_rejects_non_ed25519_public_keys():
    ec_pub = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError):
        verify(ec_pub, b"x" * 64, b"data")
    with pytest.raises(ValueError):
        verify(b"not pem", b"x" * 64, b"data")


def test_key_id():
    key = SigningKey.generate()
    assert key.key_id == hashlib.sha256(key.public_key_raw()).hexdigest()[:16]
    assert len(key.key_id) == 16 and int(key.key_id, 16) >= 0
    assert key_id_of(key.public_key_pem()) == key.key_id
    assert SigningKey.generate().key_id != key.key_id
    assert key.key_id in repr(key)
