"""Issue 14 item 6: the restore drill. A backup taken while uploads go on (and the KEK is
rotated under them), restored into a new instance folder and a new database: every attachment
and the notice decrypt to exactly what was uploaded, `portal audit verify` passes against the
last checkpoint, `portal blobs check --deep` is clean; a tampered set, or a target that is not
empty, is refused with nothing written. On SQLite and PostgreSQL, with both blob stores."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import IS_PG, WORKER, create_pg_database, csrf_of, drop_pg_database, make_settings, sign_in
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_keys_and_blobs import own_keyring  # noqa: F401  (a fixture: this test's own keyring file)

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / ".venv" / "bin" / "portal"
if not PORTAL.exists():
    PORTAL = Path(sys.executable).parent / "portal"


def _file(i: int) -> bytes:
    return b"%PDF-1.7\n" + f"drill file {i}\n".encode() + os.urandom(40_000 + 997 * i) + b"\n%%EOF\n"


def upload(client, rid, data: bytes, name: str):
    page = client.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    return client.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                       data={"csrf_token": csrf_of(page), "classification": "restricted",
                             "file": (io.BytesIO(data), name)})


def _post(client, rid, url, data=None):
    token = csrf_of(client.get(f"/reports/{rid}").get_data(as_text=True))
    return client.post(url, data={**(data or {}), "csrf_token": token})


@pytest.fixture(params=["directory", "database"])
def world(request, app, factory, tmp_path):
    """A case with an issued inform notice and a few attachments, on a blob store and a keyring
    file of its own (the drill rotates keys)."""
    request.getfixturevalue("own_keyring")
    from portal import db
    from portal.informs.models import Inform

    s = app.config["SETTINGS"]
    old = (s.blob_store, s.blob_dir)
    s.blob_store, s.blob_dir = request.param, tmp_path / "blobs"
    org = factory.org("株式会社バックアップ", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",))
    approver = factory.user("approver", compartments=("T01",))
    fc, rc, ac = app.test_client(), app.test_client(), app.test_client()
    for c, u in ((fc, filer), (rc, reviewer), (ac, approver)):
        sign_in(c, u)
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    _post(rc, rid, f"/review/cases/{rid}/take")
    draft = {"legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "流出防止措置が不十分。", "conditions": "",
             "internal_rationale": "内部の理由。", "rationale_classification": "confidential"}
    assert _post(rc, rid, f"/reports/{rid}/informs", draft).status_code == 302
    with app.app_context():
        inform_id = db.session().execute(sa.select(Inform.id).where(Inform.report_id == rid)).scalar_one()
    _post(rc, rid, f"/informs/{inform_id}/send")
    from tests.inform_helpers import approve

    assert approve(ac, inform_id, {"comment": "承認"}).status_code == 302
    notice = fc.get(f"/informs/{inform_id}/notice.pdf").data
    notice_en = fc.get(f"/informs/{inform_id}/notice.pdf?lang=en").data
    assert notice[:5] == b"%PDF-" and notice_en[:5] == b"%PDF-"
    # A second report, still a draft, that takes the uploads.
    draft_id = new_report(fc)
    uploaded = {}
    for i in range(3):
        data = _file(i)
        assert upload(fc, draft_id, data, f"before-{i}.pdf").status_code == 302
        uploaded[hashlib.sha256(data).hexdigest()] = data
    yield {"fc": fc, "draft": draft_id, "notice": notice, "notice_en": notice_en, "uploaded": uploaded, "store": request.param}
    s.blob_store, s.blob_dir = old


@pytest.fixture
def target(tmp_path_factory, request):
    """A new instance folder and a new, empty database."""
    inst = tmp_path_factory.mktemp("restored") / "instance"
    if IS_PG:
        name = f"ttr_restore_{WORKER}_{os.getpid()}"
        url = create_pg_database(name)
        yield inst, url
        drop_pg_database(name)
    else:
        yield inst, f"sqlite:///{inst / 'portal.db'}"


def _cli(inst: Path, url: str, blob_store: str, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Run `portal` commands on the restored instance, side by side (each start costs a second or two)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(inst), PORTAL_DATABASE_URL=url, PORTAL_ENV="production",
               PORTAL_BLOB_STORE=blob_store, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    procs = [(subprocess.Popen([str(PORTAL), *c], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE), c) for c in commands]
    out = []
    for p, c in procs:
        stdout, stderr = p.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
    return out


def _take(app, dest: Path, **kw):
    from portal import db
    from portal.attachments.services import store_for
    from portal.backup.take import take

    with app.app_context():
        settings = app.config["SETTINGS"]
        return take(settings, db.engine(), store_for(settings, db.session), dest, **kw)


def _decrypted(inst: Path, url: str, blob_store: str) -> dict[str, list[bytes]]:
    """Every blob of the restored instance, decrypted with the restored keyring: holder -> contents."""
    from crypto import decrypt_stream
    from portal.attachments.blobstore import DatabaseBlobStore, DirectoryBlobStore
    from portal.db import make_engine
    from portal.encryption import registry
    from portal.encryption.opener import keyring_for

    keyring = keyring_for(inst / "keyring.json")
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    out: dict[str, list[bytes]] = {}
    try:
        with sa.orm.Session(engine) as s:
            store = DirectoryBlobStore(inst / "blobs") if blob_store == "directory" else DatabaseBlobStore(lambda: s)
            for ref in list(registry.blob_refs(s)):
                dek = keyring.unwrap(ref.kek_id, ref.wrapped_dek)
                out.setdefault(ref.holder, []).append(b"".join(decrypt_stream(dek, ref.uid.encode(),
                                                                               store.read(ref.blob_key))))
            s.rollback()
    finally:
        engine.dispose()
    return out


def test_restore_drill(app, world, target, tmp_path):
    from portal.encryption.opener import keyring_for

    fc, draft_id, uploaded = world["fc"], world["draft"], world["uploaded"]
    before_backup = set(uploaded)
    during: dict[str, bytes] = {}
    started, errors = threading.Event(), []

    def uploader() -> None:
        try:
            started.wait(10)
            for i in range(3, 9):
                if i == 5:  # a rotation while the backup runs: later files are wrapped under a new KEK
                    keyring_for(app.config["SETTINGS"].keyring_path).rotate()
                data = _file(i)
                resp = upload(fc, draft_id, data, f"during-{i}.pdf")
                assert resp.status_code == 302, resp.status_code
                during[hashlib.sha256(data).hexdigest()] = data
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=uploader)
    t.start()
    started.set()
    taken = _take(app, tmp_path / "set")
    t.join(60)
    assert not errors, errors
    assert taken.missing == [] and (tmp_path / "set" / "manifest.json").exists()
    # The set is private: 0700 directories, 0600 files.
    for p in (tmp_path / "set").rglob("*"):
        assert os.stat(p).st_mode & 0o077 == 0, p

    inst, url = target
    [r] = _cli(inst, url, world["store"], ("restore", str(tmp_path / "set")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: the restored instance is whole" in r.stdout

    contents = _decrypted(inst, url, world["store"])
    assert contents["inform_notices"] == [world["notice"]]
    assert contents["inform_notices_en"] == [world["notice_en"]]  # the English notice is stored too
    got = {hashlib.sha256(c).hexdigest(): c for c in contents["attachments"]}
    assert before_backup <= set(got)  # everything committed before the backup began
    assert len(got) == len(contents["attachments"])
    for digest, content in got.items():
        assert content == {**uploaded, **during}[digest]

    # The restore ran both checks itself; the commands an operator runs agree (once is enough:
    # each start of the command costs seconds).
    assert f"blobs: {len(got) + 2} authenticated" in r.stdout and "the set's checkpoint: the trail extends" in r.stdout
    if world["store"] == "database":
        return
    verify, check = _cli(inst, url, world["store"], ("audit", "verify"), ("blobs", "check", "--deep"))
    assert verify.returncode == 0, verify.stderr
    assert "stored checkpoint #" in verify.stdout and "the trail extends the checkpoint" in verify.stdout
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(got) + 2} blobs authenticated, 0 bad" in check.stdout


def _restore_in_process(settings, src, **kw):
    from portal.backup.restore import restore

    return restore(settings, src, **kw)


DAMAGES = ["manifest", "blob", "database", "extra file", "missing file", "other key"]


def _damage(good: Path, bad: Path, damage: str, trusted: bytes) -> bytes | None:
    """A copy of the set with one kind of damage; the public key to restore it with."""
    import shutil

    from crypto import SigningKey
    from portal.backup import manifest as mf

    shutil.copytree(good, bad)
    doc = json.loads((bad / "manifest.json").read_text())
    files = [f["path"] for f in doc["manifest"]["files"]]
    if damage == "manifest":
        doc["manifest"]["records"]["attachments"] = 99
        (bad / "manifest.json").write_text(json.dumps(doc))
    elif damage == "blob":
        victim = next(p for p in files if p.startswith("blobs/"))
        data = bytearray((bad / victim).read_bytes())
        data[len(data) // 2] ^= 1
        (bad / victim).write_bytes(bytes(data))
    elif damage == "database":
        with open(bad / next(p for p in files if p.startswith("database.")), "ab") as f:
            f.write(b"\0")
    elif damage == "extra file":
        (bad / "keys" / "notes.txt").write_text("not listed")
    elif damage == "missing file":
        (bad / "keys" / "audit-signing.pem").unlink()
    else:  # re-signed with another key: refused when the operator gives the key they keep
        other = SigningKey.generate()
        doc["manifest"]["public_key"] = other.public_key_pem().decode()
        (bad / "manifest.json").write_bytes(mf.sign(doc["manifest"], other))
        return trusted
    return None


@pytest.mark.parametrize("world", ["directory"], indirect=True)
def test_a_damaged_set_is_refused_and_nothing_written(app, world, target, tmp_path):
    from portal.audit.checkpoints import signing_key
    from portal.backup import database as dbb
    from portal.backup.restore import RestoreError

    good = tmp_path / "set"
    _take(app, good)
    trusted = signing_key(str(app.config["SETTINGS"].audit_key_path)).public_key_pem()
    inst, url = target
    settings = make_settings(inst, url, blob_store=world["store"], blob_dir=inst / "blobs")
    for damage in DAMAGES:
        bad = tmp_path / f"bad-{damage.replace(' ', '-')}"
        public_key = _damage(good, bad, damage, trusted)
        with pytest.raises(RestoreError, match="refused") as refused:
            _restore_in_process(settings, bad, public_key=public_key)
        assert not inst.exists(), damage
        if IS_PG:
            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.pool.NullPool)
            with engine.connect() as c:
                assert dbb.pg_is_empty(c), damage
            engine.dispose()
        else:
            assert dbb.sqlite_is_empty(url), damage
        print(damage, "->", refused.value)
    # The intact set restores; then the target is no longer empty and a second restore is refused.
    restored = _restore_in_process(settings, good, public_key=trusted)
    assert restored.blobs == 5 and inst.exists()  # 3 uploads, the Japanese and the English notice
    with pytest.raises(RestoreError, match="not empty"):
        _restore_in_process(settings, good)


@pytest.mark.parametrize("world", ["directory"], indirect=True)
def test_keys_kept_apart(app, world, target, tmp_path):
    from portal.backup.restore import RestoreError

    taken = _take(app, tmp_path / "data", keys_dest=tmp_path / "keys")
    assert not (tmp_path / "data" / "keys").exists()
    assert sorted(p.name for p in (tmp_path / "keys" / "keys").iterdir()) == ["audit-signing.pem", "keyring.json",
                                                                             "secret_key"]
    assert taken.keys_dest == tmp_path / "keys"
    inst, url = target
    settings = make_settings(inst, url, blob_store=world["store"], blob_dir=inst / "blobs")
    with pytest.raises(RestoreError, match="--keys"):
        _restore_in_process(settings, tmp_path / "data")
    assert _restore_in_process(settings, tmp_path / "data", keys_src=tmp_path / "keys").blobs >= 0


@pytest.mark.parametrize("world", ["directory"], indirect=True)
def test_backup_refuses_a_destination_that_is_not_empty(app, world, tmp_path):
    from portal.backup.take import BackupError

    dest = tmp_path / "used"
    dest.mkdir()
    (dest / "something").write_text("x")
    with pytest.raises(BackupError, match="new or empty"):
        _take(app, dest)
    assert [p.name for p in dest.iterdir()] == ["something"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_pg_tools_of_another_major_version_are_refused(tmp_path):
    """pg_dump/pg_restore must be of the server's major version; the message says what to install."""
    from portal.backup import database as dbb

    fake = tmp_path / "bin"
    fake.mkdir()
    for name, version in (("pg_dump", "14.11"), ("pg_restore", "16.2")):
        script = fake / name
        script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
        script.chmod(0o755)
    with pytest.raises(dbb.DatabaseError, match=r"pg_dump 14\.11 is not of the server's major version 15.*refuses a newer "
                                                r"server.*/usr/lib/postgresql/15/bin"):
        dbb.check_same_major(dbb.tool("pg_dump", str(fake)), 15)
    with pytest.raises(dbb.DatabaseError, match=r"pg_restore 16\.2 .* emits settings"):
        dbb.check_same_major(dbb.tool("pg_restore", str(fake)), 15)
    assert dbb.check_same_major(dbb.tool("pg_dump", str(fake)), 14) == "14.11"
    with pytest.raises(dbb.DatabaseError, match="not found in"):
        dbb.tool("pg_dump", str(tmp_path))


@pytest.mark.parametrize("world", ["directory"], indirect=True)
def test_a_keyring_that_lacks_a_key_the_data_uses_fails_the_backup(app, world, tmp_path):
    """A keyring changed behind `portal keys`' back (a KEK removed while data still uses it):
    no set whose keyring cannot open its database; the backup says which key, leaves nothing."""
    from portal.backup.take import BackupError
    from portal.encryption.opener import keyring_for

    kr = keyring_for(app.config["SETTINGS"].keyring_path)
    used = kr.rotate()
    assert upload(world["fc"], world["draft"], _file(20), "under-the-new-key.pdf").status_code == 302
    kr.rotate()
    kr.retire(used)  # the keyring file alone, without `portal keys retire`'s reference check
    with pytest.raises(BackupError, match=f"no consistent snapshot in 3 attempts: .*lacks: {used}"):
        _take(app, tmp_path / "set")
    assert not (tmp_path / "set").exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
