"""The real ``portal`` console script, driven as an operator would (issue 2 item 4, issue 3
item 6): each test works on its own copy of an instance folder and SQLite database, so the
tests stay independent under pytest-xdist. Every subprocess costs about a second, so the
instance is initialised (and seeded with demo data) once per module and copied."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / ".venv" / "bin" / "portal"
if not PORTAL.exists():  # an installation outside .venv: the script next to this interpreter
    PORTAL = Path(sys.executable).parent / "portal"

COMPANY = "1180301018771"   # 株式会社サンプル電子 (demo data)
GOVERNMENT = "4000012090001"  # 経済産業省 (demo data)
GOOD_PASSWORD = "a long enough passphrase 7"


@dataclass
class Instance:
    path: Path

    @property
    def db(self) -> Path:
        return self.path / "portal.db"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
        env.update(PORTAL_INSTANCE_PATH=str(self.path), PORTAL_DATABASE_URL=f"sqlite:///{self.db}",
                   PORTAL_ENV="production", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
        return env

    def popen(self, *args: str, stdin: str | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([str(PORTAL), *args], cwd=ROOT, env=self.env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stdin is not None:  # small: fits the pipe buffer, so this never blocks
            proc.stdin.write(stdin)
            proc.stdin.flush()
        return proc

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return _finish(self.popen(*args, stdin=stdin), args)

    def run_all(self, *commands: tuple[str, ...], stdin: str | None = None) -> list[subprocess.CompletedProcess]:
        """Run independent commands at the same time (they only read, or are refused)."""
        procs = [(self.popen(*c, stdin=stdin), c) for c in commands]
        return [_finish(p, c) for p, c in procs]

    def query(self, sql: str, *params) -> list[tuple]:
        con = sqlite3.connect(self.db)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) FROM {table}")[0][0]


def _finish(proc: subprocess.Popen, args) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess([PORTAL.name, *args], proc.returncode, out, err)


def _copy(template: Instance, tmp_path: Path) -> Instance:
    dest = tmp_path / "instance"
    shutil.copytree(template.path, dest)
    return Instance(dest)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> tuple[Instance, subprocess.CompletedProcess]:
    inst = Instance(tmp_path_factory.mktemp("cli") / "instance")
    result = inst.run("init")
    assert result.returncode == 0, result.stderr
    return inst, result


@pytest.fixture(scope="module")
def demo_template(initialised, tmp_path_factory) -> tuple[Instance, subprocess.CompletedProcess]:
    inst = _copy(initialised[0], tmp_path_factory.mktemp("cli-demo"))
    result = inst.run("demo")
    assert result.returncode == 0, result.stderr
    return inst, result


@pytest.fixture
def inst(initialised, tmp_path) -> Instance:
    """A migrated instance with no users."""
    return _copy(initialised[0], tmp_path)


@pytest.fixture
def demo(demo_template, tmp_path) -> Instance:
    """A migrated instance holding the demo data."""
    return _copy(demo_template[0], tmp_path)


# ---------------------------------------------------------------- help

HELP = [(), ("init",), ("demo",), ("users",), ("users", "create"), ("users", "disable"), ("serve",), ("scan",),
        ("audit",), ("audit", "verify")]


def test_help_of_every_command(tmp_path):
    inst = Instance(tmp_path / "unused")  # --help needs no instance and must not create one
    results = inst.run_all(*[(*c, "--help") for c in HELP])
    for command, r in zip(HELP, results):
        assert r.returncode == 0, (command, r.stderr)
        assert r.stdout.startswith(f"Usage: portal {' '.join(command)}".rstrip()), (command, r.stdout)
    by_command = dict(zip(HELP, results))
    top = by_command[()].stdout
    for sub in ("init", "demo", "users", "serve", "audit"):
        assert f"  {sub} " in top
    create = by_command[("users", "create")].stdout
    for option in ("--email", "--name", "--role", "--organisation", "--level", "--password-stdin"):
        assert option in create
    assert not (tmp_path / "unused").exists()


def test_unknown_command_and_option_fail(inst):
    bad_cmd, bad_opt = inst.run_all(("frobnicate",), ("init", "--bogus"))
    assert bad_cmd.returncode == 2 and "No such command 'frobnicate'" in bad_cmd.stderr
    assert bad_opt.returncode == 2 and "No such option" in bad_opt.stderr


# ---------------------------------------------------------------- init

def test_init_creates_secret_keyring_and_signing_key_0600(initialised):
    inst, result = initialised
    for name in ("secret_key", "keyring.json", "audit-signing.pem"):
        path = inst.path / name
        assert path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, oct(path.stat().st_mode))
        assert path.stat().st_size > 0
        assert f"created {path}" in result.stdout
    assert stat.S_IMODE(inst.path.stat().st_mode) == 0o700
    assert "database at head" in result.stdout
    assert inst.count("technologies") == 19
    assert inst.query("SELECT count(*) FROM alembic_version")[0][0] == 1


def test_init_twice_keeps_the_keys(inst):
    before = {n: (inst.path / n).read_bytes() for n in ("secret_key", "keyring.json", "audit-signing.pem")}
    result = inst.run("init")
    assert result.returncode == 0, result.stderr
    assert "created" not in result.stdout
    assert "database at head" in result.stdout
    assert {n: (inst.path / n).read_bytes() for n in before} == before
    assert inst.count("technologies") == 19


# ---------------------------------------------------------------- demo

def test_demo_prints_accounts_once_and_does_not_duplicate(demo_template, demo):
    _, first = demo_template
    lines = [line for line in first.stdout.splitlines() if "@demo.example" in line]
    assert len(lines) == 8
    roles = {line.split()[0] for line in lines}
    assert roles == {"filer", "org_admin", "reviewer", "approver", "auditor", "security_officer", "admin"}
    assert all(len(line.split()) == 4 for line in lines)  # role, e-mail, password, TOTP or "-"
    users, orgs, events = demo.count("users"), demo.count("organisations"), demo.count("audit_events")
    assert users == 8 and orgs == 3

    again = demo.run("demo")
    assert again.returncode == 0, again.stderr
    assert "already present" in again.stdout
    assert (demo.count("users"), demo.count("organisations"), demo.count("audit_events")) == (users, orgs, events)


def test_demo_refuses_a_database_with_a_real_account(demo):
    created = demo.run("users", "create", "--email", "real.person@example.co.jp", "--name", "Real Person",
                       "--role", "filer", "--organisation", COMPANY, "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    users = demo.count("users")

    refused = demo.run("demo")
    assert refused.returncode != 0
    assert "real accounts" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert demo.count("users") == users


# ---------------------------------------------------------------- users create / disable

def _create_args(**overrides) -> tuple[str, ...]:
    values = {"--email": "new.filer@example.co.jp", "--name": "新規 申請者", "--role": "filer",
              "--organisation": COMPANY, **overrides}
    args = ["users", "create", "--password-stdin"]
    for k, v in values.items():
        args += [k, v]
    return tuple(args)


def test_users_create_refuses_bad_arguments_and_creates_nothing(demo):
    users, clearances, events = demo.count("users"), demo.count("clearances"), demo.count("audit_events")
    cases = {
        "role": (_create_args(**{"--role": "boss"}), ["--role", "boss", "filer", "security_officer"]),
        "level": (_create_args(**{"--level": "topsecret"}), ["--level", "topsecret", "confidential"]),
        "organisation": (_create_args(**{"--organisation": "1234567890123"}), ["--organisation", "1234567890123"]),
        "email": (_create_args(**{"--email": "not-an-email"}), ["メールアドレス"]),
        "role_vs_org": (_create_args(**{"--role": "reviewer"}), ["役割"]),
        "compartment": (_create_args(**{"--level": "restricted", "--compartment": "T99"}), ["コンパートメント"]),
    }
    results = demo.run_all(*[args for args, _ in cases.values()], stdin=GOOD_PASSWORD + "\n")
    for (name, (_, needles)), r in zip(cases.items(), results):
        assert r.returncode != 0, name
        assert "Error:" in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
        for needle in needles:
            assert needle in r.stderr, (name, needle, r.stderr)
    assert (demo.count("users"), demo.count("clearances")) == (users, clearances)
    # Refusals the services make (bad e-mail, role for the organisation, unknown compartment)
    # are recorded; argument errors click rejects before anything runs are not.
    refused = demo.query("SELECT reason FROM audit_events WHERE action = 'account.create' AND outcome = 'failure' "
                         "ORDER BY seq")
    assert sorted(r[0] for r in refused) == ["bad_email", "role_org_mismatch", "unknown_compartment"]
    assert demo.count("audit_events") == events + 3
    assert demo.query("SELECT count(*) FROM users WHERE email = 'new.filer@example.co.jp'")[0][0] == 0


def test_users_create_refuses_a_weak_password(demo):
    users = demo.count("users")
    r = demo.run(*_create_args(), stdin="short\n")
    assert r.returncode != 0 and "Error:" in r.stderr and "12" in r.stderr
    assert demo.count("users") == users


def test_users_create_with_clearance_then_disable(demo):
    r = demo.run(*_create_args(**{"--level": "restricted", "--compartment": "T14"}),
                 "--compartment", "T08", stdin=GOOD_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "created user" in r.stdout and "new.filer@example.co.jp" in r.stdout

    (user,) = demo.query("SELECT id, role, active, password_hash FROM users WHERE email = ?", "new.filer@example.co.jp")
    user_id, role, active, pw_hash = user
    assert role == "filer" and active == 1 and pw_hash and GOOD_PASSWORD not in pw_hash
    clearance = demo.query("SELECT id, level, expires_on, revoked_at FROM clearances WHERE user_id = ?", user_id)
    assert len(clearance) == 1
    clearance_id, level, expires_on, revoked_at = clearance[0]
    assert level == "restricted" and expires_on and revoked_at is None
    compartments = demo.query(
        "SELECT t.code FROM clearance_compartments cc JOIN technologies t ON t.id = cc.technology_id "
        "WHERE cc.clearance_id = ? ORDER BY t.code", clearance_id)
    assert [c for (c,) in compartments] == ["T08", "T14"]
    actions = [a for (a,) in demo.query("SELECT action FROM audit_events WHERE target_id = ? ORDER BY seq", str(user_id))]
    assert actions == ["account.create", "clearance.grant"]

    duplicate = demo.run(*_create_args(), stdin=GOOD_PASSWORD + "\n")
    assert duplicate.returncode != 0 and "Error:" in duplicate.stderr

    disabled, unknown = demo.run_all(("users", "disable", "new.filer@example.co.jp"),
                                     ("users", "disable", "nobody@example.co.jp"))
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled new.filer@example.co.jp" in disabled.stdout
    assert demo.query("SELECT active, disabled_at IS NOT NULL FROM users WHERE id = ?", user_id) == [(0, 1)]
    assert demo.query("SELECT count(*) FROM audit_events WHERE action = 'account.disable' AND target_id = ?",
                      str(user_id)) == [(1,)]
    assert unknown.returncode != 0 and "nobody@example.co.jp" in unknown.stderr


def test_users_create_does_not_lock_the_database_while_waiting_for_the_password(demo):
    """On SQLite every transaction holds the write lock: a prompt left open must not stop the
    web portal (here: another writer with a 1 s timeout) from working."""
    waiting = demo.popen(*_create_args())  # no password yet: it sits reading stdin
    try:
        time.sleep(1.5)  # long enough to have looked up the organisation
        assert waiting.poll() is None
        con = sqlite3.connect(demo.db, timeout=1, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the prompt holds it
            con.execute("ROLLBACK")
        finally:
            con.close()
        waiting.stdin.write(GOOD_PASSWORD + "\n")
        waiting.stdin.flush()
        result = _finish(waiting, ("users", "create"))
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert result.returncode == 0, result.stderr
    assert demo.query("SELECT count(*) FROM users WHERE email = 'new.filer@example.co.jp'") == [(1,)]


# ---------------------------------------------------------------- audit verify

def test_audit_verify_clean_then_tampered(demo):
    events = demo.count("audit_events")
    assert events >= 10  # the demo records organisations, accounts and grants
    ok = demo.run("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"ok: {events} events, head {events} ")

    con = sqlite3.connect(demo.db)
    with con:
        con.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 5")
    con.close()
    broken = demo.run("audit", "verify")
    assert broken.returncode != 0
    assert "sequence 5" in broken.stderr
    assert "ok:" not in broken.stdout


def test_audit_verify_names_a_deleted_event(demo):
    con = sqlite3.connect(demo.db)
    with con:
        con.execute("DELETE FROM audit_events WHERE seq = 3")
    con.close()
    r = demo.run("audit", "verify")
    assert r.returncode != 0 and "sequence 3" in r.stderr


def test_serve_answers_from_any_directory(inst, tmp_path):
    """`portal serve` starts gunicorn on the app factory: no wsgi.py needed in the working directory."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.Popen([str(PORTAL), "serve", "--port", str(port), "--workers", "1"], cwd=elsewhere,
                            env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as resp:
                    status = resp.status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, proc.stderr.read() if proc.poll() is not None else "no answer within 30 s"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
