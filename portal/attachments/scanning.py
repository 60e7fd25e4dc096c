"""Malware scanning of attachments with clamd (portal.clamd).

An upload is scanned while it arrives: the parser hands each plaintext chunk to the
UploadSink, which encrypts it into the blob store and feeds the same chunk to a clamd
INSTREAM connection; the verdict is read when the body ends, before the row is stored. A
scanner that is unset, unreachable, or goes away mid-scan leaves the file ``pending``, never
clean; ``portal scan --pending`` later decrypts the stored blob and streams it the same way.
``portal scan`` rescans clean files with the current signatures and quarantines what they
now catch. Every verdict is an audit event (``attachment.scan``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto import DecryptionError, Keyring
from portal import clamd
from portal.attachments.blobstore import BlobStore
from portal.attachments.models import Attachment
from portal.audit.trail import record
from portal.db import utcnow

log = logging.getLogger(__name__)

PENDING, CLEAN, INFECTED, ERROR = "pending", clamd.CLEAN, clamd.INFECTED, clamd.ERROR


def scanner_for(settings) -> clamd.Client | None:
    if not settings.clamd_socket:
        return None
    return clamd.Client(settings.clamd_socket, timeout=float(settings.clamd_timeout_seconds))


class UploadScan:
    """The INSTREAM scan of one upload, fed as the upload is encrypted. Any failure of the
    scanner ends the scan without a verdict (the file stays pending); the upload goes on."""

    def __init__(self, client: clamd.Client | None):
        self.stream: clamd.InStream | None = None
        self.failure: str | None = "no scanner configured" if client is None else None
        if client is not None:
            try:
                self.stream = client.instream()
            except clamd.ScannerUnavailable as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        log.warning("upload not scanned, left pending: %s", exc)
        self.failure = str(exc)
        if self.stream is not None:
            self.stream.close()
        self.stream = None

    def feed(self, data: bytes) -> None:
        if self.stream is None:
            return
        try:
            self.stream.feed(data)
        except clamd.ScannerUnavailable as exc:
            self._fail(exc)

    def finish(self) -> clamd.Verdict | None:
        if self.stream is None:
            return None
        try:
            return self.stream.finish()
        except clamd.ScannerUnavailable as exc:
            self._fail(exc)
            return None
        finally:
            if self.stream is not None:
                self.stream.close()
                self.stream = None

    def abort(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def apply_verdict(session: Session, att: Attachment, verdict: clamd.Verdict | None, *, actor=None,
                  ip: str | None = None, how: str, failure: str | None = None) -> None:
    """Record what the scan found on the file and in the audit trail. ``how``: upload,
    pending (a later scan of a stored file) or rescan."""
    before = att.scan_state
    if verdict is None:
        # No verdict: the file stays (or becomes again, for a failed rescan: no) pending.
        if before == PENDING:
            record(session, "attachment.scan", actor=actor, source_ip=ip, outcome="failure",
                   target_type="attachment", target_id=att.id, case_ref=att.report.reference,
                   org_id=att.report.organisation_id, reason="scanner_unavailable",
                   details={"how": how, "state": PENDING, "error": (failure or "")[:200]})
        return
    att.scan_state = verdict.state
    att.scan_signature = verdict.signature
    att.scanned_at = utcnow()
    outcome = "success" if verdict.state == CLEAN else "failure"
    record(session, "attachment.scan", actor=actor, source_ip=ip, outcome=outcome, target_type="attachment",
           target_id=att.id, case_ref=att.report.reference, org_id=att.report.organisation_id,
           reason=None if verdict.state == CLEAN else ("unscannable" if verdict.unscannable else verdict.state),
           details={"how": how, "state": verdict.state, "signature": verdict.signature or "",
                    "previous": before, "sha256": att.sha256})
    if before == CLEAN and verdict.state == INFECTED:
        record(session, "attachment.quarantine", actor=actor, outcome="success", target_type="attachment",
               target_id=att.id, case_ref=att.report.reference, org_id=att.report.organisation_id,
               details={"signature": verdict.signature or "", "sha256": att.sha256})


class Throttle:
    """At most ``mb_per_s`` through the scanner (a rescan must not starve the uploads)."""

    def __init__(self, mb_per_s: float | None):
        self.rate = mb_per_s * 1e6 if mb_per_s else None
        self.start = time.monotonic()
        self.sent = 0

    def pace(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sent += len(chunk)
            if self.rate:
                ahead = self.sent / self.rate - (time.monotonic() - self.start)
                if ahead > 0:
                    time.sleep(ahead)
            yield chunk


def scan_stored(client: clamd.Client, plaintext: Iterable[bytes]) -> clamd.Verdict:
    """Stream a stored file's plaintext (decrypted segment by segment) to clamd. A segment
    that fails to authenticate is a verdict of its own: the file is not what was stored."""
    try:
        return client.scan(plaintext)
    except DecryptionError as exc:
        return clamd.Verdict(ERROR, f"stored file damaged: {exc}"[:200])


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    bytes: int = 0
    states: dict[str, int] = field(default_factory=dict)
    newly_infected: list[int] = field(default_factory=list)
    unavailable: bool = False


def run_scans(session: Session, store: BlobStore, keyring: Keyring, client: clamd.Client, *, states: tuple[str, ...],
              older_than: timedelta | None, limit: int | None, mb_per_s: float | None, how: str,
              opener: Callable[[BlobStore, Keyring, Attachment], Iterator[bytes]],
              on_file: Callable[[Progress, Attachment], None] = lambda p, a: None) -> Progress:
    """Scan the files in ``states`` (oldest id first), committing each verdict as it comes, so
    a run that is stopped resumes where it was: a rescan skips files scanned within
    ``older_than`` (those this run, or a stopped one, already did)."""
    query = select(Attachment.id).where(Attachment.scan_state.in_(states)).order_by(Attachment.id)
    if older_than is not None:
        cutoff: datetime = utcnow() - older_than
        query = query.where((Attachment.scanned_at.is_(None)) | (Attachment.scanned_at < cutoff))
    ids = list(session.execute(query).scalars())
    session.commit()
    if limit is not None:
        ids = ids[:limit]
    progress = Progress(total=len(ids))
    throttle = Throttle(mb_per_s)
    for att_id in ids:
        att = session.get(Attachment, att_id)
        if att is None or att.scan_state not in states:
            session.commit()  # removed or scanned meanwhile
            continue
        try:
            chunks = opener(store, keyring, att)
        except Exception as exc:  # noqa: BLE001 - BlobUnreadable: missing blob, key gone, damaged
            verdict: clamd.Verdict | None = clamd.Verdict(ERROR, f"stored file unreadable: {getattr(exc, 'reason', exc)}")
        else:
            verdict = None
        try:
            if verdict is None:
                verdict = scan_stored(client, throttle.pace(chunks))
        except clamd.ScannerUnavailable as exc:
            apply_verdict(session, att, None, how=how, failure=str(exc))
            session.commit()
            progress.unavailable = True
            log.warning("scanner unavailable, stopping: %s", exc)
            break
        assert verdict is not None
        was = att.scan_state
        apply_verdict(session, att, verdict, how=how)
        session.commit()
        progress.done += 1
        progress.bytes += att.size
        progress.states[verdict.state] = progress.states.get(verdict.state, 0) + 1
        if was == CLEAN and verdict.state == INFECTED:
            progress.newly_infected.append(att.id)
        on_file(progress, att)
    return progress


def counts(session: Session) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(select(Attachment.scan_state, func.count()).group_by(Attachment.scan_state)).all()
    return {state: n for state, n in rows}
