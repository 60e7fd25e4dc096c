from __future__ import annotations

from alembic import context

from portal.db import make_engine
import portal.models  # noqa: F401  (fills the metadata)
from portal.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.attributes.get("database_url")
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _render_item(type_, obj, autogen_context):
    # Sealed columns are bytes in the database; migrations must not import the cipher.
    from portal.encryption.sealed import Ciphertext

    if type_ == "type" and isinstance(obj, Ciphertext):
        return "sa.LargeBinary()"
    return False


def _run(conn) -> None:
    context.configure(
        connection=conn,
        render_item=_render_item,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use `portal db upgrade`")
run_migrations_online()
