"""`portal blobs check --deep` against the bare stream decryption (issue 14, "Measure and report").

Makes a temporary instance (SQLite by default, or --database-url for PostgreSQL; directory or
database blob store), seeds the demo, adds --files attachments of --mib MiB in total (random
content encrypted as uploads are: UploadSink into the store, data key wrapped by the keyring),
then in the same run:

    deep check    portal.encryption.blobcheck.check(deep=True): what `portal blobs check --deep`
                  runs: every blob read from the store and decrypted to nowhere; rate = ciphertext
                  MB/s (10^6 bytes/s) including the reads (page cache: the files were just written)
    decrypt       bench/crypto_stream.py's decrypt_stream measurement over the same amount of
                  data (its file reads excluded)
    the CLI       `portal blobs check --deep` once, as an operator runs it: its own MB/s line

Ratio = deep-check MB/s / decrypt_stream MB/s (1.0: the check costs nothing beyond the
decryption). Best of --repeat (3) for both, alternated.

    .venv/bin/python bench/blobs_check.py [--mib 200] [--files 20] [--repeat 3]
        [--blob-store directory|database] [--database-url postgresql://...]

Prints one line per run and appends one JSON line to bench/results/blobs_check.json. The
temporary instance (and database, for PostgreSQL) is removed at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, drop_database, recreate_database, write_result

import crypto_stream

CHUNK = 1 << 20


def _settings(instance: Path, url: str, blob_store: str):
    from portal.config import Settings

    return Settings.from_env({}, env="development", instance_path=instance, database_url=url,
                             blob_store=blob_store, secret_key="b" * 48)


def _prepare(settings, mib: int, files: int) -> int:
    """The demo, then ``files`` attachments of ``mib`` MiB in all; returns ciphertext bytes."""
    from sqlalchemy import select

    from portal import create_app, db
    from portal.attachments import services
    from portal.attachments.models import Attachment
    from portal.demo import seed
    from portal.encryption import sealed
    from portal.encryption.instance import ensure_instance
    from portal.encryption.opener import keyring_for
    from portal.migrate import upgrade

    ensure_instance(settings)
    if not str(settings.database_url).startswith("postgresql"):
        upgrade(settings.database_url)
    app = create_app(settings)
    keyring = keyring_for(settings.keyring_path)
    with app.app_context():
        sealed.configure(keyring, settings.database_url)
        with db.engine().begin() as conn:
            sealed.ensure_field_key(conn, keyring)
        s = db.session()
        seed(s)
        s.commit()
        template = s.execute(select(Attachment).limit(1)).scalar_one()
        per_file = mib * CHUNK // files
        block = os.urandom(CHUNK)
        store = services.store_for(settings, db.session)
        for i in range(files):
            sink = services.UploadSink(store, settings.max_upload_bytes)
            left = per_file
            while left:
                n = min(left, CHUNK)
                sink.write(block[:n])
                left -= n
            sink.seek(0)
            kek_id, wrapped = keyring.wrap(sink.dek)
            s.add(Attachment(uid=sink.uid, report_id=template.report_id, filename=f"bench-{i}.bin",
                             content_type="application/octet-stream", kind="zip", size=sink.size,
                             sha256=sink.encryptor.plaintext_sha256, classification="restricted",
                             blob_key=sink.blob_key, kek_id=kek_id, wrapped_dek=wrapped,
                             uploaded_by_id=template.uploaded_by_id, compartments=template.compartments))
            sink.commit()
            s.commit()
    return app


def _deep(app, settings) -> tuple[float, int, int, int]:
    from portal import db
    from portal.attachments.services import store_for
    from portal.encryption import blobcheck
    from portal.encryption.opener import keyring_for

    with app.app_context():
        s = db.session()
        report = blobcheck.check(s, store_for(settings, db.session), keyring_for(settings.keyring_path), deep=True)
        s.rollback()
    if not report.ok:
        raise SystemExit(f"the store is not clean: {report}")
    return report.seconds, report.bytes_read, report.checked, len(report.bad)


def _cli(settings) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(settings.instance_path), PORTAL_DATABASE_URL=str(settings.database_url),
               PORTAL_BLOB_STORE=settings.blob_store, PORTAL_ENV="development")
    out = subprocess.run([sys.executable, "-m", "portal.cli", "blobs", "check", "--deep"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"`portal blobs check --deep` exited {out.returncode}: {out.stdout}{out.stderr}")
    return next(line for line in out.stdout.splitlines() if line.startswith("deep:"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=200, help="attachments in all, MiB (default 200)")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blob-store", choices=["directory", "database"], default="directory")
    ap.add_argument("--database-url", default=None, help="PostgreSQL (a throwaway database); default SQLite")
    args = ap.parse_args(argv)
    if args.files < 1 or args.mib < args.files:
        raise SystemExit("--mib must be at least --files")

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ttr-bench-blobs-"))
    url = args.database_url or f"sqlite:///{tmp / 'instance' / 'portal.db'}"
    try:
        if args.database_url:
            recreate_database(url)
        (tmp / "instance").mkdir()
        settings = _settings(tmp / "instance", url, args.blob_store)
        app = _prepare(settings, args.mib, args.files)
        print(f"blobs_check: {args.files} attachments, {args.mib} MiB, {args.blob_store} store, "
              f"{'PostgreSQL' if args.database_url else 'SQLite'}; best of {args.repeat}", flush=True)
        dek = os.urandom(32)
        block = os.urandom(CHUNK)
        ct = tmp / "stream.ttra"
        crypto_stream.write_ciphertext(dek, block, args.mib, ct)
        best_deep = best_dec = float("inf")
        deep_bytes = checked = 0
        for run in range(1, args.repeat + 1):
            dt, deep_bytes, checked, bad = _deep(app, settings)
            assert checked >= args.files and bad == 0
            best_deep = min(best_deep, dt)
            print(f"deep check        run {run}  {dt:7.3f} s  {deep_bytes / dt / 1e6:8.1f} MB/s  ({checked} blobs)",
                  flush=True)
            dt, n, _ = crypto_stream.dec_stream(dek, ct)
            best_dec = min(best_dec, dt)
            print(f"decrypt_stream    run {run}  {dt:7.3f} s  {n / dt / 1e6:8.1f} MB/s", flush=True)
        ct.unlink()
        cli_line = _cli(settings)
        print(f"the CLI: {cli_line}")
        deep_rate = deep_bytes / best_deep / 1e6
        dec_rate = args.mib * CHUNK / best_dec / 1e6
        ratio = deep_rate / dec_rate
        print(f"ratio (deep check / decrypt_stream)  {ratio:.3f}  ({deep_rate:.1f} vs {dec_rate:.1f} MB/s)")
        print(f"total {time.perf_counter() - started:.1f} s")
        path = write_result("blobs_check", {
            "files": args.files, "mib": args.mib, "blob_store": args.blob_store,
            "database": "postgresql" if args.database_url else "sqlite", "repeat": args.repeat,
            "blobs": checked, "ciphertext_bytes": deep_bytes,
            "deep_check_mb_s": round(deep_rate, 1), "decrypt_stream_mb_s": round(dec_rate, 1),
            "ratio": round(ratio, 3), "cli_line": cli_line,
        })
        print(f"appended to {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.database_url:
            drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
