"""Alembic driven from code, so `portal init` and the tests use the same path."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def config(url: str, keyring=None) -> Config:
    """``keyring``: the instance's (a ``crypto.Keyring``), for migrations that re-seal
    encrypted fields; one run on a database holding such fields refuses without it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = url
    cfg.attributes["keyring"] = keyring
    return cfg


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head", *, keyring=None) -> None:
    _ensure_sqlite_dir(url)
    command.upgrade(config(url, keyring), revision)


def downgrade(url: str, revision: str, *, keyring=None) -> None:
    command.downgrade(config(url, keyring), revision)


def revision(url: str, message: str) -> None:
    command.revision(config(url), message=message, autogenerate=True)
