"""A live API to drive from outside (schemathesis, the README's example client, the bench):
a fresh database and instance, a real gunicorn server (tests/live_server.py), a company with a
filer and an org_admin, and a token for the filer issued by the admin."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.api_helpers import issue_token
from tests.conftest import Factory, fresh_database_url, make_settings
from tests.live_server import Server, portal_cli, server_env


@dataclass
class LiveApi:
    base_url: str
    token: str
    token_id: int
    server: Server
    app: object  # the portal app on the same database, for the test's own reads
    filer: object
    admin: object


@contextmanager
def live_api(tmp_path_factory, workdir: Path, *, label: str = "api", rate_per_minute: int = 10**6, workers: int = 1):
    from portal import create_app

    url = fresh_database_url(tmp_path_factory, label)
    instance = workdir / "instance"
    env = server_env(url, instance, PORTAL_API_RATE_PER_MINUTE=str(rate_per_minute))
    portal_cli(env, "init")
    app = create_app(make_settings(instance, url))
    f = Factory(app)
    org = f.org("株式会社エーピーアイ", facility=True)
    admin = f.user("org_admin", org=org)
    filer = f.user("filer", org=org)
    token_id, token = issue_token(app, filer, admin=admin)
    server = Server(env, workdir, name=label, workers=workers)
    try:
        yield LiveApi(f"http://127.0.0.1:{server.port}", token, token_id, server, app, filer, admin)
    finally:
        server.stop()
        app.extensions["db_engine"].dispose()
