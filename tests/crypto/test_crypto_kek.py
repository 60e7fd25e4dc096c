"""Keyrings: the 0600 file keyring and the in-memory one."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
from pathlib import Path

import pytest

from crypto.kek import (
    FileKeyring,
    Keyring,
    KeyringError,
    MemoryKeyring,
    UnknownKey,
)

KEK_ID = re.compile(r"^kek-\d{8}-[0-9a-f]{8}$")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=["file", "memory"])
def keyring(request, tmp_path):
    if request.param == "file":
        return FileKeyring.create(tmp_path / "keyring.json")
    return MemoryKeyring()


# ---------------------------------------------------------------- creation
def test_create_makes_a_0600_file_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        kr = FileKeyring.create(tmp_path / "k.json")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k.json") == 0o600
    doc = json.loads((tmp_path / "k.json").read_text())
    assert doc["version"] == 1
    assert doc["active"] == kr.active_id
    assert KEK_ID.match(kr.active_id)
    entry = doc["keys"][kr.active_id]
    assert len(__import__("base64").b64decode(entry["key"])) == 32
    assert entry["created"].endswith("Z")


def test_create_refuses_an_existing_file(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("precious")
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError, match="exists"):
        FileKeyring.create(path)
    assert path.read_text() == "precious"


def test_create_refuses_a_symlink(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyringError):
        FileKeyring.create(tmp_path / "link")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("perm", [0o644, 0o640, 0o604, 0o660, 0o602, 0o610])
def test_load_refuses_group_or_other_access(tmp_path, perm):
    path = tmp_path / "k.json"
    FileKeyring.create(path)
    os.chmod(path, perm)
    with pytest.raises(KeyringError, match="too open"):
        FileKeyring(path)


def test_load_accepts_0400(tmp_path):
    path = tmp_path / "k.json"
    kr = FileKeyring.create(path)
    os.chmod(path, 0o400)
    assert FileKeyring(path).active_id == kr.active_id


def test_load_missing_file(tmp_path):
    with pytest.raises(KeyringError):
        FileKeyring(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"version": 2, "active": "x", "keys": {}}',
        '{"version": 1, "active": "kek-20250101-00000000", "keys": {}}',
        '{"version": 1, "active": "kek-20250101-00000000", "keys": '
        '{"kek-20250101-00000000": {"key": "AAAA", "created": "2025-01-01T00:00:00Z"}}}',
        '{"version": 1, "active": "kek-20250101-11111111", "keys": '
        '{"kek-20250101-00000000": {"key": "' + "A" * 43 + '=", "created": "x"}}}',
        '{"version": 1, "active": "bad id", "keys": '
        '{"bad id": {"key": "' + "A" * 43 + '=", "created": "x"}}}',
    ],
)
def test_load_refuses_malformed_files(tmp_path, content):
    path = tmp_path / "k.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(KeyringError, match="invalid keyring"):
        FileKeyring(path)


def test_implements_the_protocol(keyring):
    assert isinstance(keyring, Keyring)


# ---------------------------------------------------------------- wrapping
def test_wrap_unwrap(keyring):
    dek = os.urandom(32)
    kek_id, wrapped = keyring.wrap(dek)
    assert kek_id == keyring.active_id
    assert len(wrapped) == 40 and dek not in wrapped
    assert keyring.unwrap(kek_id, wrapped) == dek


def test_unwrap_tampered_is_keyring_error_not_unknown(keyring):
    kek_id, wrapped = keyring.wrap(os.urandom(32))
    bad = bytearray(wrapped)
    bad[5] ^= 1
    with pytest.raises(KeyringError) as info:
        keyring.unwrap(kek_id, bytes(bad))
    assert not isinstance(info.value, UnknownKey)
    with pytest.raises(KeyringError):
        keyring.unwrap(kek_id, wrapped[:-8])


def test_unwrap_unknown_id(keyring):
    _, wrapped = keyring.wrap(os.urandom(32))
    with pytest.raises(UnknownKey):
        keyring.unwrap("kek-20000101-deadbeef", wrapped)


def test_wrap_rejects_bad_lengths(keyring):
    with pytest.raises(ValueError):
        keyring.wrap(b"too short")


# ---------------------------------------------------------------- rotation
def test_rotate_makes_a_new_active_key_and_old_keys_still_unwrap(keyring):
    dek = os.urandom(32)
    old_id, old_wrapped = keyring.wrap(dek)
    new_id = keyring.rotate()
    assert KEK_ID.match(new_id) and new_id != old_id
    assert keyring.active_id == new_id
    assert set(keyring.ids()) == {old_id, new_id}
    assert keyring.unwrap(old_id, old_wrapped) == dek
    kek_id, wrapped = keyring.wrap(dek)
    assert kek_id == new_id and wrapped != old_wrapped
    assert keyring.unwrap(kek_id, wrapped) == dek


def test_retire_removes_a_non_active_key(keyring):
    dek = os.urandom(32)
    old_id, wrapped = keyring.wrap(dek)
    new_id = keyring.rotate()
    keyring.retire(old_id)
    assert keyring.ids() == [new_id]
    with pytest.raises(UnknownKey):
        keyring.unwrap(old_id, wrapped)


def test_retiring_the_active_key_is_refused(keyring):
    active = keyring.active_id
    with pytest.raises(KeyringError, match="active"):
        keyring.retire(active)
    assert keyring.ids() == [active]


def test_retiring_an_unknown_key(keyring):
    with pytest.raises(UnknownKey):
        keyring.retire("kek-20000101-deadbeef")


def test_status_has_no_key_material(keyring):
    keyring.rotate()
    status = keyring.status()
    text = json.dumps(status)
    assert status["active"] == keyring.active_id
    assert [k["id"] for k in status["keys"]] == keyring.ids()
    assert sum(k["active"] for k in status["keys"]) == 1
    assert status["backend"] in ("file", "memory")
    if isinstance(keyring, FileKeyring):
        doc = json.loads(Path(keyring.path).read_text())
        for entry in doc["keys"].values():
            assert entry["key"] not in text
    # No bytes literal (key material) in the repr. A key id may itself end in "b" before its
    # closing quote ("kek-…-dd52608b'"), so look for b' that does not follow an id character.
    assert not re.search(r"(?<![0-9A-Za-z-])b'", repr(keyring))


# ---------------------------------------------------------------- file specifics
def test_rotation_is_persisted_atomically_with_0600(tmp_path):
    path = tmp_path / "k.json"
    kr = FileKeyring.create(path)
    dek = os.urandom(32)
    first, wrapped = kr.wrap(dek)
    second = kr.rotate()
    assert mode(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["k.json", "k.json.lock"]  # no temp files left
    assert mode(tmp_path / "k.json.lock") == 0o600
    reloaded = FileKeyring(path)
    assert reloaded.active_id == second
    assert reloaded.unwrap(first, wrapped) == dek
    kr.retire(first)
    assert FileKeyring(path).ids() == [second]
    assert mode(path) == 0o600


def test_other_instances_see_changes(tmp_path):
    path = tmp_path / "k.json"
    a = FileKeyring.create(path)
    b = FileKeyring(path)
    new = a.rotate()
    assert b.active_id == new
    kek_id, wrapped = a.wrap(b"k" * 32)
    assert b.unwrap(kek_id, wrapped) == b"k" * 32


def test_stale_instance_rotating_keeps_the_other_instances_keys(tmp_path):
    path = tmp_path / "k.json"
    a = FileKeyring.create(path)
    b = FileKeyring(path)
    ka = a.rotate()
    b._sig = None  # pretend b has not noticed yet; rotate must re-read under the lock
    kb = b.rotate()
    ids = FileKeyring(path).ids()
    assert len(ids) == 3 and ka in ids and kb in ids


def test_persist_failure_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "k.json"
    kr = FileKeyring.create(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyringError):
        kr.rotate()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["k.json", "k.json.lock"]


def _rotate_many(path: str, n: int) -> None:
    kr = FileKeyring(path)
    for _ in range(n):
        kr.rotate()


def test_concurrent_rotation_from_several_processes(tmp_path):
    path = str(tmp_path / "k.json")
    FileKeyring.create(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rotate_many, args=(path, 5)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    kr = FileKeyring(path)
    assert len(kr.ids()) == 1 + 4 * 5
    assert mode(path) == 0o600


def test_memory_keyring_with_fixed_keys():
    kr = MemoryKeyring({"kek-20250101-00000001": b"\x01" * 32, "kek-20250101-00000002": b"\x02" * 32})
    assert kr.active_id == "kek-20250101-00000002"
    with pytest.raises(KeyringError):
        MemoryKeyring({"kek-20250101-00000001": b"short"})
    with pytest.raises(KeyringError):
        MemoryKeyring({"kek-20250101-00000001": b"\x01" * 32}, active="kek-x")
