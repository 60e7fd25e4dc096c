"""Backup and restore times (issue 14, "Measure and report"): `portal backup` and `portal restore`
as an operator runs them, on the demo data and on N small attachments, on SQLite and PostgreSQL.

Run: .venv/bin/python bench/backup_restore.py [--attachments 10000] [--size 8192] [--databases sqlite,postgresql]

For each database: a temporary instance (`portal init`, `portal demo`), then
1. demo: `portal backup SET` and `portal restore SET` into a new instance folder and a new
   database, each timed as a whole (wall clock, the command's start-up included);
2. N attachments added to a demo draft report (encrypted through the portal's upload sink into
   the directory blob store, data keys wrapped by the keyring; random bytes of --size, a PDF
   header so they pass as PDFs), then the same backup and restore.
The restore's time is split into the restore proper (verify the set's SHA-256s, place the files,
load the database) and the checks it runs afterwards (audit trail against its checkpoints,
every blob authenticated, every wrapped key unwrapped, every sealed value opened).
PostgreSQL uses BENCH_DATABASE_URL's server (default 127.0.0.1:5432) and two throwaway
databases. One JSON line per run in bench/results/backup_restore.json.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, database_url, drop_database, write_result

PORTAL = ROOT / ".venv" / "bin" / "portal"


def _env(inst: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(inst), PORTAL_DATABASE_URL=url, PORTAL_ENV="production",
               LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    return env


def portal(inst: Path, url: str, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([str(PORTAL), *args], cwd=ROOT, env=_env(inst, url), text=True, capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"portal {' '.join(args)} failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    return dt, r.stdout


def _fresh_pg(url: str) -> str:
    import sqlalchemy as sa

    from _common import _admin_engine, db_name

    engine = _admin_engine(url)
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name(url)}" WITH (FORCE)'))
        c.execute(sa.text(f'CREATE DATABASE "{db_name(url)}"'))
    engine.dispose()
    return url


def add_attachments(inst: Path, url: str, n: int, size: int) -> float:
    """N encrypted attachments on one draft of the demo company's filer; returns seconds."""
    os.environ.update(_env(inst, url))
    import sqlalchemy as sa

    from portal import create_app, db
    from portal.attachments.models import Attachment
    from portal.attachments.services import UploadSink, store_for
    from portal.auth.models import User
    from portal.config import Settings
    from portal.encryption.opener import keyring_for
    from portal.reports.models import Report

    app = create_app(Settings.from_env())
    t0 = time.perf_counter()
    with app.app_context():
        s = db.session()
        settings = app.config["SETTINGS"]
        filer = s.execute(sa.select(User).where(User.role == "filer").order_by(User.id)).scalars().first()
        report = Report(organisation_id=filer.organisation_id, created_by_id=filer.id, status="draft")
        s.add(report)
        s.commit()
        store, keyring = store_for(settings, db.session), keyring_for(settings.keyring_path)
        rows = []
        for i in range(n):
            data = b"%PDF-1.7\n" + os.urandom(size - 16) + b"\n%%EOF\n"
            sink = UploadSink(store, size)
            sink.write(data)
            sink.seek(0)
            kek_id, wrapped = keyring.wrap(sink.dek)
            sink.commit()
            rows.append(dict(uid=sink.uid, report_id=report.id, filename=f"bench-{i}.pdf",
                             content_type="application/pdf", kind="pdf", size=sink.size,
                             sha256=sink.encryptor.plaintext_sha256, classification="restricted", compartments="T01",
                             blob_key=sink.blob_key, kek_id=kek_id, wrapped_dek=wrapped, uploaded_by_id=filer.id))
            if len(rows) == 1000:
                s.execute(sa.insert(Attachment), rows)
                s.commit()
                rows.clear()
        if rows:
            s.execute(sa.insert(Attachment), rows)
            s.commit()
        db.engine().dispose()
    return time.perf_counter() - t0


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cycle(work: Path, inst: Path, url: str, restore_url: str, label: str) -> dict:
    """One backup and one restore into a new instance and database."""
    dest = work / f"set-{label}"
    backup_s, out = portal(inst, url, "backup", str(dest))
    blobs = int(re.search(r"(\d+) blobs,", out).group(1))
    backup_proper = float(re.search(r"blobs, ([\d.]+) s", out).group(1))
    target = work / f"restored-{label}"
    if restore_url.startswith("postgresql"):
        _fresh_pg(restore_url)
    else:
        restore_url = f"sqlite:///{target / 'portal.db'}"
    restore_s, out = portal(target, restore_url, "restore", str(dest))
    proper = float(re.search(r"\) in ([\d.]+) s", out).group(1))
    checks = float(re.search(r"checks took ([\d.]+) s", out).group(1))
    authenticated = re.search(r"blobs: (\d+) authenticated", out)
    set_bytes = _du(dest)
    shutil.rmtree(dest)
    shutil.rmtree(target)
    return {"label": label, "blobs": blobs, "set_mb": round(set_bytes / 1e6, 1), "backup_s": round(backup_s, 2),
            "backup_proper_s": backup_proper,
            "restore_s": round(restore_s, 2), "restore_proper_s": round(proper, 2), "restore_checks_s": round(checks, 2),
            "command_start_s": round(restore_s - proper - checks, 2),
            "authenticated": int(authenticated.group(1)) if authenticated else None}


def run(database: str, n: int, size: int, keep: bool) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-backup-{database}-"))
    inst = work / "instance"
    pg = database == "postgresql"
    url = _fresh_pg(database_url(None, "ttr_bench_backup")) if pg else f"sqlite:///{inst / 'portal.db'}"
    restore_url = database_url(None, "ttr_bench_restore") if pg else ""
    results = []
    try:
        portal(inst, url, "init")
        portal(inst, url, "demo")
        for label in ("demo", f"{n} attachments"):
            if label != "demo":
                # In a process of its own: the app (and its field-key cache) is per instance.
                t0 = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--add", str(inst), url, str(n), str(size)], check=True,
                               env=_env(inst, url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                gen = time.perf_counter() - t0
                print(f"  [{database}] added {n} attachments of {size} bytes in {gen:.1f} s")
            r = cycle(work, inst, url, restore_url, label.replace(" ", "-"))
            r.update(database=database, attachment_bytes=size if label != "demo" else None)
            results.append(r)
            print(f"  [{database}] {label}: {r['blobs']} blobs, set {r['set_mb']} MB; backup {r['backup_s']} s (the work: {r['backup_proper_s']} s); "
                  f"restore {r['restore_s']} s (start-up {r['command_start_s']} s + restore {r['restore_proper_s']} s "
                  f"+ checks {r['restore_checks_s']} s)")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            if pg:
                drop_database(url)
                drop_database(database_url(None, "ttr_bench_restore"))
    return results


def main() -> None:
    if sys.argv[1:2] == ["--add"]:
        add_attachments(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attachments", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=8192, help="bytes per attachment")
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--keep", action="store_true", help="keep the temporary instances")
    args = ap.parse_args()
    print(f"backup and restore: demo data, then {args.attachments} attachments of {args.size} bytes")
    all_results = []
    for database in args.databases.split(","):
        all_results += run(database, args.attachments, args.size, args.keep)
    write_result("backup_restore", {"attachments": args.attachments, "size": args.size, "runs": all_results})


if __name__ == "__main__":
    sys.exit(main())
