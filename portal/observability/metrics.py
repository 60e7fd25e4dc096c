"""The portal's Prometheus metrics, and one small function per thing worth counting.

This module imports nothing of the portal: the audit trail, the attachment views and the
request middleware call it from every layer. Each call is a few microseconds and never raises
(a metric must not fail a request). Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by
``portal serve`` before any worker starts) puts prometheus-client in multiprocess mode: each
worker writes its own file there and ``/metrics`` adds them up (portal.observability.scrape).

Label values are bounded sets chosen by the code (route templates, not paths; reasons and
audit actions are identifiers the code writes): never a value a client sent.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Iterable, Iterator

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

log = logging.getLogger(__name__)

# The ``*_created`` series (when each counter was made) double the output for nothing Prometheus
# uses; multiprocess mode has none anyway.
disable_created_metrics()
# A process started with the variable set before any server made the directory (a cron job, a
# `portal` command from an environment file shared with the server) would fail below.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)

# Latency buckets from a cached page (5 ms) to a long transfer (a 1 GiB upload at 10 Mbit/s
# takes some 15 minutes).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

REQUESTS = Counter("portal_http_requests", "HTTP requests answered, by route template, method and status class",
                   ["route", "method", "status"])
LATENCY = Histogram("portal_http_request_duration_seconds",
                    "From the request's arrival to the last byte of its response (streams included)",
                    ["route", "method", "status"], buckets=_BUCKETS)
IN_PROGRESS = Gauge("portal_http_requests_in_progress", "Requests being handled or streamed now",
                    multiprocess_mode="livesum")
CUT_OFF = Counter("portal_http_responses_cut_off", "Responses whose body did not reach its end (client gone, error)",
                  ["route"])
UPLOADS = Counter("portal_uploads", "Attachments stored")
UPLOAD_BYTES = Counter("portal_upload_bytes", "Plaintext bytes of the attachments stored")
UPLOADS_REFUSED = Counter("portal_uploads_refused", "Uploads refused or failed, by reason", ["reason"])
DOWNLOADS = Counter("portal_downloads", "Downloads, by what was downloaded and whether the last byte went out",
                    ["kind", "outcome"])
DOWNLOAD_BYTES = Counter("portal_download_bytes", "Plaintext bytes sent by downloads", ["kind"])
AUDIT_APPENDS = Counter("portal_audit_appends", "Audit events appended, by action and outcome (in the "
                        "request's transaction: an event of a request that rolled back counts too)",
                        ["action", "outcome"])
BLOB_ERRORS = Counter("portal_blob_store_errors", "Blobs that could not be read: missing, failing "
                      "authentication, or an I/O error", ["error"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABEL = re.compile(r"[a-z0-9_.:-]{1,64}")


def label(value: object) -> str:
    """A label value the code chose, or "other": never an unbounded set of series."""
    text = str(value or "").lower()
    return text if _LABEL.fullmatch(text) else "other"


def method_label(method: str | None) -> str:
    return method if method in METHODS else "other"


def _quietly(fn):
    def wrapper(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:  # a metric never fails what it measures
            log.warning("metric %s not recorded", fn.__name__, exc_info=True)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_quietly
def request_done(route: str, method: str, status: int, seconds: float, cut_off: bool) -> None:
    labels = (route, method_label(method), f"{status // 100}xx")
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)
    if cut_off:
        CUT_OFF.labels(route).inc()


@_quietly
def in_progress(delta: int) -> None:
    IN_PROGRESS.inc(delta)


@_quietly
def upload_stored(size: int) -> None:
    UPLOADS.inc()
    UPLOAD_BYTES.inc(max(int(size), 0))


@_quietly
def upload_refused(reason: str | None) -> None:
    UPLOADS_REFUSED.labels(label(reason or "error")).inc()


@_quietly
def audit_appended(action: str | None, outcome: str) -> None:
    AUDIT_APPENDS.labels(label(action), label(outcome)).inc()


@_quietly
def blob_error(error: str) -> None:
    BLOB_ERRORS.labels(label(error)).inc()


def download(kind: str, chunks: Iterable[bytes], *, integrity_errors: tuple[type[BaseException], ...] = ()
             ) -> Iterator[bytes]:
    """``chunks`` as they go out, counted: bytes, and at the end whether the last one went out.
    A chunk that fails to authenticate or a blob that cannot be read is a blob store error."""
    sent = 0
    outcome = "cut_off"
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
        outcome = "complete"
    except integrity_errors:
        outcome = "failed"
        blob_error("integrity")
        raise
    except OSError as e:
        outcome = "failed"
        blob_error("missing" if isinstance(e, FileNotFoundError) else "io")
        raise
    finally:
        _download_done(kind, outcome, sent)


@_quietly
def _download_done(kind: str, outcome: str, sent: int) -> None:
    DOWNLOADS.labels(label(kind), outcome).inc()
    DOWNLOAD_BYTES.labels(label(kind)).inc(sent)
