"""What gunicorn needs for the portal's logs and metrics (portal/serving/gunicorn_conf.py calls it).

Metrics: prometheus-client's multiprocess mode. Each worker writes its counters to a file of
its own in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds every file up, whichever worker
answers. The directory must exist before the first worker imports prometheus-client and must
start empty (counters of an earlier server would otherwise be added in), so the arbiter makes
it in ``on_starting``. Unless the operator names one, it is ``<instance>/metrics/<host>-<pid>``:
one per running server, because two servers may share an instance folder (shared storage)
and must neither add up nor wipe each other's files. The arbiter removes its own on exit, and
at start the ones of servers of this host that are no longer running.

Logs: gunicorn's error log in the portal's JSON format, and no access log (the portal writes
its own request line, with the route, the user id and the request id, and without the query
string gunicorn's line would carry).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from portal.observability.logs import JsonFormatter

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_OURS = re.compile(r"(?P<host>.+)-(?P<pid>[0-9]+)")


def default_metrics_dir(instance_path: str | os.PathLike, pid: int | None = None) -> Path:
    return Path(instance_path) / "metrics" / f"{_host()}-{pid or os.getpid()}"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:60] or "host"


def prepare_metrics_dir(instance_path: str | os.PathLike, *, empty: bool = True) -> Path:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` (when unset) and make the directory exist, with no
    metric files in it when ``empty``. Run in the process that becomes the arbiter, before
    any worker starts."""
    given = os.environ.get(MULTIPROC_DIR)
    path = Path(given) if given else default_metrics_dir(instance_path)
    try:
        if not given:
            _prune_stale(path.parent)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if empty:
            for f in path.glob("*.db"):  # prometheus-client's files only: never empty a directory wholesale
                f.unlink(missing_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot prepare the metrics directory {path} ({exc}): set {MULTIPROC_DIR} to a "
                           "writable directory on local disk") from None
    os.environ[MULTIPROC_DIR] = str(path)
    return path


def _instance_path() -> Path:
    from portal.config import ConfigError, Settings

    try:
        return Settings.from_env().instance_path
    except ConfigError:
        # The app refuses to start with the same message; metrics need only a place meanwhile.
        return Path(Settings.instance_path).resolve()


def use_metrics_dir() -> None:
    """At the import of gunicorn's configuration, before an app preloaded into the arbiter
    (``--preload``) imports prometheus-client: the variable set and the directory there."""
    prepare_metrics_dir(_instance_path(), empty=False)


def _prune_stale(parent: Path) -> None:
    if not parent.is_dir():
        return
    host = _host()
    for d in parent.iterdir():
        m = _OURS.fullmatch(d.name)
        if d.is_dir() and m and m["host"] == host and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- gunicorn server hooks

def on_starting(server) -> None:
    prepare_metrics_dir(_instance_path())


def child_exit(server, worker) -> None:
    """A worker is gone (recycled, killed): its live gauges (requests in progress) leave the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    path = os.environ.get(MULTIPROC_DIR)
    if path and Path(path).name == f"{_host()}-{os.getpid()}":
        shutil.rmtree(path, ignore_errors=True)


class JsonLogger(Logger):
    """gunicorn's logger with its error log in JSON and its access log off."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def _compute_access_log_enabled(self) -> bool:
        return False

    def access(self, resp, req, environ, request_time) -> None:
        return None
