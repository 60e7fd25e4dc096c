"""Gauges computed when Prometheus scrapes, from the keyring file and the database: the state
of the keys and of the daily job. They describe the deployment, not one process, so every
worker reports the same values (no per-process files), and a job run from cron, or on another
server, shows here too.

Cheap: the keyring file is parsed again only when it changed, and the database is asked one
grouped count per holder of wrapped keys (indexed columns, one statement: the registry's
``kek_usage_by_holder``) and one aggregate over ``job_runs``, in a read-only snapshot (on
SQLite a deferred transaction: a scrape never takes the write lock).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Generator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from portal.config import Settings
from portal.encryption import registry
from portal.encryption.opener import keyring_for
from portal.attachments.models import Attachment
from portal.review.models import JobRun

log = logging.getLogger(__name__)


class StateCollector:
    def __init__(self, settings: Settings, engine) -> None:
        self.settings = settings
        self.engine = engine

    def collect(self) -> Generator[Metric, None, None]:
        kek_ids = yield from self._keyring()
        yield from self._database(kek_ids)
        yield from self._scanner()

    def _scanner(self) -> Generator[Metric, None, None]:
        from portal import clamd

        health = clamd.health(self.settings.clamd_socket, self.settings.clamd_database_dir)
        yield GaugeMetricFamily("portal_scanner_up", "1 when clamd answers (uploads wait as pending otherwise)",
                                value=1 if health["state"] in {"ok", "stale"} else 0)
        if health.get("signatures_age_hours") is not None:
            yield GaugeMetricFamily("portal_scanner_signatures_age_seconds", "Age of the signatures clamd loaded",
                                    value=health["signatures_age_hours"] * 3600)

    def _keyring(self) -> Generator[Metric, None, set[str] | None]:
        up = GaugeMetricFamily("portal_keyring_up", "1 when the keyring file can be read")
        try:
            status = keyring_for(str(self.settings.keyring_path)).status()
        except Exception:  # reported as a metric; the scrape goes on
            log.warning("keyring unreadable for metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return None
        up.add_metric([], 1)
        keys = status.get("keys", [])
        yield up
        yield GaugeMetricFamily("portal_keyring_keks", "Key-encryption keys in the keyring", value=len(keys))
        active = next((k for k in keys if k.get("active")), None)
        if active is not None:
            created = datetime.fromisoformat(str(active["created"]))
            if created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            yield GaugeMetricFamily("portal_keyring_active_kek_age_seconds", "Age of the active key-encryption key",
                                    value=max((datetime.now(timezone.utc) - created).total_seconds(), 0.0))
        return {k["id"] for k in keys}

    def _database(self, kek_ids: set[str] | None) -> Generator[Metric, None, None]:
        up = GaugeMetricFamily("portal_state_database_up",
                               "1 when the scrape could read the key and job state from the database")
        try:
            with self.engine.connect().execution_options(read_only_snapshot=True) as conn:
                usage = registry.kek_usage_by_holder(conn)
                jobs = conn.execute(select(JobRun.job, func.max(JobRun.finished_at),
                                           func.count().filter(JobRun.finished_at.is_(None)))
                                    .group_by(JobRun.job)).all()
                scans = conn.execute(select(Attachment.scan_state, func.count()).group_by(Attachment.scan_state)).all()
                conn.rollback()
        except Exception:  # the database may be away: say so, keep the rest
            log.warning("database unreadable for metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        wrapped = GaugeMetricFamily("portal_wrapped_keys", "Data keys wrapped by each key-encryption key, by holder "
                                    "(\"in flight\": wraps whose transaction has not committed yet)",
                                    labels=["kek", "holder"])
        unknown = 0
        for kek, by_holder in sorted(usage.items()):
            for holder, n in sorted(by_holder.items()):
                wrapped.add_metric([kek, holder], n)
            if kek_ids is not None and kek not in kek_ids:
                unknown += sum(by_holder.values())
        yield wrapped
        if kek_ids is not None:
            yield GaugeMetricFamily("portal_wrapped_keys_unknown_kek", "Data keys wrapped by a key-encryption key "
                                    "the keyring does not hold: what they protect cannot be decrypted", value=unknown)

        finished = GaugeMetricFamily("portal_job_last_finished_timestamp_seconds",
                                     "When each job last finished a day's run (Unix time)", labels=["job"])
        unfinished = GaugeMetricFamily("portal_job_unfinished_runs", "Days whose run started and has not finished: "
                                       "under way, or interrupted and left to the next invocation", labels=["job"])
        for job, last, open_runs in jobs:
            if last is not None:
                finished.add_metric([job], (last if last.tzinfo else last.replace(tzinfo=timezone.utc)).timestamp())
            unfinished.add_metric([job], open_runs)
        yield finished
        yield unfinished

        by_state = GaugeMetricFamily("portal_attachments_by_scan_state", "Stored files by malware-scan state "
                                     "(pending: not yet scanned; infected: refused)", labels=["state"])
        found = dict(scans)
        for state in ("pending", "clean", "infected", "error"):
            by_state.add_metric([state], found.get(state, 0))
        yield by_state
