"""Shared helpers for the benchmarks: a throwaway PostgreSQL database and result lines."""
from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "results"


def database_url(argv_url: str | None, default_name: str = "ttr_bench") -> str:
    return argv_url or os.environ.get("BENCH_DATABASE_URL") or f"postgresql://postgres@127.0.0.1:5432/{default_name}"


def _admin_engine(url: str) -> sa.Engine:
    admin_url = re.sub(r"/[^/]*$", "/postgres", url)
    if admin_url.startswith("postgresql://"):
        admin_url = "postgresql+psycopg://" + admin_url[len("postgresql://"):]
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")


def db_name(url: str) -> str:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"refusing odd database name {name!r}")
    return name


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database, then migrate it to head."""
    from portal.migrate import upgrade

    if not url.startswith("postgresql"):
        raise SystemExit("the benchmark runs against PostgreSQL (postgresql://...)")
    name = db_name(url)
    engine = _admin_engine(url)
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    upgrade(url)


def drop_database(url: str) -> None:
    engine = _admin_engine(url)
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name(url)}" WITH (FORCE)'))
    engine.dispose()


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "python": platform.python_version(), "cpus": os.cpu_count(), **result}
    path = RESULTS / f"{name}.json"
    with path.open("a") as f:
        f.write(json.dumps(result, ensure_ascii=False) + "\n")
    return path
