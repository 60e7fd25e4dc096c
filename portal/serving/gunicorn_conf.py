"""The one gunicorn configuration of the portal: `portal serve`, the README's production command
(``gunicorn -c python:portal.serving.gunicorn_conf wsgi:app``) and the tests' servers load it.
Command-line options given after it (``--bind``, ``--workers``, ``--threads``) override it.

Why these settings (DESIGN §9, README "Production"):

* Worker model: threads, each request on its own thread, in a few processes. A transfer holds
  a thread for as long as it takes (a 1 GiB upload over a 10 Mbit/s link: 15 minutes) while the
  other threads serve everyone else. gunicorn's default "sync" worker serves one request per
  process and kills any that runs past ``timeout`` (30 s): long transfers were cut off.
* ``portal.serving.worker.PortalWorker`` is gthread that reads request heads in its event
  loop and paces transfers (portal/serving/pace.py): slow clients cannot take every thread.
* ``timeout`` is the worker's heartbeat, not a limit on a request: the event loop beats every
  second whatever the threads are doing.
* ``graceful_timeout``: a restart (HUP, a deploy) lets transfers in flight finish for up to
  15 minutes before the old workers are stopped; new workers serve meanwhile.
"""
from __future__ import annotations

import os
import resource

from portal.db import POOL_SIZE_VARIABLE
from portal.observability import gunicorn_hooks
from portal.serving.pace import Limits

bind = "127.0.0.1:5000"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "portal.serving.worker.PortalWorker"
threads = 16
# Connections per worker, including those still sending their head and kept-alive ones: a
# connection that holds no thread costs a few kilobytes, and each is one file descriptor
# (on_starting raises the process's limit to match).
worker_connections = 2000
timeout = 30
graceful_timeout = 15 * 60
# Below the proxy's upstream keep-alive (README: nginx `keepalive_timeout 4s` in the upstream).
keepalive = 5
# Static files go through the paced socket like every other response.
sendfile = False
# One control socket per user and host by default: two servers on one host would share it.
control_socket_disable = True
# The portal writes one JSON line per request itself (portal/observability): no access log,
# and gunicorn's own messages in the same JSON.
accesslog = None
logger_class = "portal.observability.gunicorn_hooks.JsonLogger"
# Metrics of all workers add up in PROMETHEUS_MULTIPROC_DIR, which must be set before anything
# imports prometheus-client (an app loaded with --preload included); on_starting empties it.
gunicorn_hooks.use_metrics_dir()


def on_starting(server):
    """In the arbiter, before any worker starts: settings that are wrong stop the start here
    rather than failing every worker in turn."""
    Limits.from_env()
    # Each worker's database pool holds one connection per thread (portal/db.py).
    os.environ.setdefault(POOL_SIZE_VARIABLE, str(server.cfg.threads))
    _enough_file_descriptors(server)
    # A fresh PROMETHEUS_MULTIPROC_DIR before the first worker imports prometheus-client.
    gunicorn_hooks.on_starting(server)


def _enough_file_descriptors(server) -> None:
    """Each connection is a file descriptor; many systems start services with a soft limit of
    1024. Raised up to the hard limit (inherited by the workers); said in the log if short."""
    needed = server.cfg.worker_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            server.log.warning("open files limited to %s: fewer than worker_connections (%s) can be held; "
                               "raise the hard limit (LimitNOFILE=)", target, server.cfg.worker_connections)


def child_exit(server, worker):
    gunicorn_hooks.child_exit(server, worker)


def on_exit(server):
    gunicorn_hooks.on_exit(server)
