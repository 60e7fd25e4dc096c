"""Encrypted attachments: the upload streams from the request through encryption into the
blob store (no plaintext on disk, memory constant in the file size); the download streams
the decrypted content and stops at the first segment that fails to authenticate; a blob that
is missing or whose first segment does not authenticate is found before the response starts."""
from __future__ import annotations

import itertools
import logging
import os
import re
import unicodedata
from datetime import date
from typing import Any, Iterator, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from crypto import DecryptionError, Keyring, KeyringError, StreamEncryptor, decrypt_stream, new_dek
from portal.access.levels import Level
from portal.access.policy import Action, Labels, Subject, compartment_text, decide
from portal.attachments import scanning, sniff
from portal.attachments.blobstore import BlobStore, DirectoryBlobStore, DatabaseBlobStore, new_key
from portal.attachments.models import Attachment
from portal.audit.trail import record
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.text import strip_controls
from portal.encryption import leases

log = logging.getLogger(__name__)

EDITABLE = ("draft", "returned")


class Report(Protocol):
    """What the store reads of the report a file belongs to (``portal.reports.models.Report``:
    reports build on attachments, freezing a report's files into each submitted version, so
    this package does not import them)."""

    id: int
    status: str
    reference: str | None
    organisation_id: int
    organisation: Any  # its facility clearance decides what a file may be classified at

    def case_compartments(self) -> frozenset[str]: ...

    def working_copy_labels(self): ...


class UploadSink:
    """The file object Werkzeug's multipart parser writes the upload into."""

    def __init__(self, store: BlobStore, limit: int, *, scan: scanning.UploadScan | None = None):
        self.store = store
        # The plaintext goes to clamd as it is encrypted (None: a document the portal made).
        self.scan = scan
        self.verdict = None
        self.limit = limit
        self.uid = new_key()
        self.blob_key = new_key()
        self.dek = new_dek()
        self.encryptor = StreamEncryptor(self.dek, self.uid.encode())
        self.writer = store.writer(self.blob_key)
        self.writer.write(self.encryptor.header)
        self.head = bytearray()
        self.size = 0
        self.finished = False
        self.closed_ok = False
        self.extra_files = 0
        # The lease on the KEK its data key was wrapped under, and where it lives (leases).
        self.lease: leases.Lease | None = None
        self.lease_engine = None

    # file protocol used by werkzeug.formparser
    def write(self, data: bytes) -> int:
        if self.finished:
            raise ServiceError(_("Upload one file at a time."), reason="several_files")
        self.size += len(data)
        if self.size > self.limit:
            raise RequestEntityTooLarge()
        if len(self.head) < sniff.SNIFF_BYTES:
            self.head += data[: sniff.SNIFF_BYTES - len(self.head)]
        out = self.encryptor.update(data)
        if out:
            self.writer.write(out)
        if self.scan is not None:
            self.scan.feed(data)
        return len(data)

    def seek(self, *args) -> int:
        # Werkzeug seeks to 0 when the part is complete: the stream is finished.
        if not self.finished:
            self.writer.write(self.encryptor.finalize())
            self.finished = True
            if self.scan is not None:
                self.verdict = self.scan.finish()
        return 0

    def read(self, *args) -> bytes:  # never hand plaintext back
        return b""

    def close(self) -> None:
        pass

    def commit(self) -> None:
        if self.closed_ok:
            return
        self.writer.commit()
        self.closed_ok = True

    def abort(self) -> None:
        """The row naming this blob will not be committed: remove the blob (a committed file
        too; database chunks go with the rolled-back transaction) and give the lease back."""
        try:
            if not self.closed_ok:
                self.writer.abort()
            elif isinstance(self.store, DirectoryBlobStore):
                self.store.delete(self.blob_key)
        finally:
            lease, self.lease = self.lease, None
            if lease is not None:
                try:
                    leases.drop(self.lease_engine, lease)
                except Exception:  # it expires; the original failure is what matters
                    log.exception("could not give back the lease on %s", lease.kek_id)

    def wrap_key(self, session, keyring: Keyring, purpose: str) -> tuple[str, bytes]:
        """Wrap this upload's data key under a leased KEK (portal.encryption.leases); the
        transaction that stores it calls ``leases.release(session, sink.lease)``."""
        lease, kek_id, wrapped = leases.wrap(session, keyring, self.dek, purpose)
        self.lease, self.lease_engine = lease, leases.engine_of(session)
        return kek_id, wrapped


def store_for(settings, session_factory) -> BlobStore:
    if settings.blob_store == "database":
        return DatabaseBlobStore(session_factory)
    return DirectoryBlobStore(settings.blob_dir)


_UNSAFE = re.compile(r'[<>:"/\\|?*]')


def clean_filename(raw: str | None) -> str:
    r"""What the person sees as the file's name: the last path component, NFC, no path
    characters, at most 200 characters. Control and text-direction characters are removed
    (``photo\u202egnp.txt`` would show as "phototxt.png"). Never used as a storage path."""
    name = strip_controls(unicodedata.normalize("NFC", raw or ""))
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext)] + ext
    return name or "attachment"


def upload_levels(report: Report, *, subject: Subject, today: date) -> list[Level]:
    """The classifications this person may give a file added to the report (the upload form
    offers only these): each decided on the labels store_upload gives such a file."""
    base = report.working_copy_labels()
    facility = report.organisation.facility_clearance_valid(today)
    allowed = []
    for level in Level:
        labels = Labels(org_id=report.organisation_id, classification=level.value, compartments=base.compartments,
                        audience="company", draft=report.status == "draft", internal=False, frozen=False,
                        audience_facility_valid=facility)
        if decide(subject, Action.ATTACHMENT_UPLOAD, labels, today=today).allowed:
            allowed.append(level)
    return allowed


def store_upload(session: Session, keyring: Keyring, sink: UploadSink, *, report: Report, filename: str,
                 classification: str, subject: Subject, actor, today: date, ip: str | None,
                 message=None) -> Attachment:
    """Check what arrived, record it and place its blob; the caller aborts the sink on any
    exception (which removes a placed blob too)."""
    if not sink.finished or sink.size == 0:
        raise ServiceError(_("The file is empty. Choose a file with content."), field="file", reason="empty_file")
    name = clean_filename(filename)
    kind = sniff.kind_of(bytes(sink.head))
    if not sniff.check(kind, name):
        raise ServiceError(_("This type of file is not accepted. Upload a PDF, an Office document, an image (PNG, JPEG, GIF, TIFF), plain text or a ZIP file, with a name ending that matches its content."),
                           field="file", reason="type_not_allowed")
    level = Level.parse(classification or "")
    if level is None:
        raise ServiceError(_("Choose a classification from the list."), field="classification", reason="unknown_level")
    if message is None and report.status not in EDITABLE:
        raise ServiceError(_("Files can be added only while the report is a draft or returned for correction."),
                           reason="not_editable")
    att = Attachment(uid=sink.uid, report_id=report.id, filename=name, content_type=sniff.content_type(kind, name),
                     kind=kind, size=sink.size, sha256=sink.encryptor.plaintext_sha256, classification=level.value,
                     blob_key=sink.blob_key, kek_id="", wrapped_dek=b"", uploaded_by_id=actor.id,
                     message_id=message.id if message is not None else None,
                     compartments=message.compartments if message is not None
                     else compartment_text(report.working_copy_labels().compartments))
    att.report = report
    att.message = message
    # A message's file is part of the message: the poster writes it into the same channel.
    action = Action.ATTACHMENT_UPLOAD if message is None else (
        Action.MESSAGE_POST if message.channel == "external" else Action.INTERNAL_NOTE_POST)
    d = decide(subject, action, att.access_labels(), today=today)
    if not d.allowed:
        raise ServiceError(_("You may not attach a file of this classification to this report."),
                           field="classification", reason=d.reason)
    att.kek_id, att.wrapped_dek = sink.wrap_key(session, keyring, "attachment")
    att.scan_state = scanning.PENDING
    session.add(att)
    session.flush()
    record(session, "attachment.upload", actor=actor, source_ip=ip, target_type="attachment", target_id=att.id,
           case_ref=report.reference, org_id=report.organisation_id,
           details={"report": report.id, "size": att.size, "kind": kind, "classification": att.classification,
                    "sha256": att.sha256})
    # The verdict clamd gave as the body ended; none (no scanner, or it failed): pending.
    scanning.apply_verdict(session, att, sink.verdict, actor=actor, ip=ip, how="upload",
                           failure=sink.scan.failure if sink.scan is not None else "not scanned")
    _release(session, sink)
    # The blob is placed before the row that names it commits: a crash in between leaves an
    # orphan blob (found by `portal blobs check`), never a row without its blob.
    sink.commit()
    return att


def _release(session: Session, sink: UploadSink) -> None:
    try:
        leases.release(session, sink.lease)
    except leases.LeaseExpired:
        raise ServiceError(_("Storing the file took too long. Try again."), reason="key_lease_expired") from None


class BlobUnreadable(Exception):
    """The blob cannot be served: found before any byte of the response is sent."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason  # blob_missing | integrity | key_missing


def opened(store: BlobStore, keyring: Keyring, *, uid: str, blob_key: str, kek_id: str,
           wrapped: bytes) -> Iterator[bytes]:
    """The plaintext stream, its first segment already authenticated (header, key commitment,
    first tag), so that a missing or damaged blob is an error page rather than a response
    that stops after its headers. A later segment that fails still ends the stream."""
    if not store.exists(blob_key):
        raise BlobUnreadable("blob_missing", f"blob {blob_key} is missing")
    try:
        dek = keyring.unwrap(kek_id, wrapped)
    except KeyringError as exc:
        raise BlobUnreadable("key_missing", str(exc)) from None
    chunks = decrypt_stream(dek, uid.encode(), store.read(blob_key))
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    except FileNotFoundError:
        raise BlobUnreadable("blob_missing", f"blob {blob_key} is missing") from None
    except DecryptionError as exc:
        raise BlobUnreadable("integrity", str(exc)) from None
    return itertools.chain((first,), chunks)


def plaintext(store: BlobStore, keyring: Keyring, att: Attachment) -> Iterator[bytes]:
    return opened(store, keyring, uid=att.uid, blob_key=att.blob_key, kek_id=att.kek_id, wrapped=att.wrapped_dek)


def list_for_report(session: Session, report: Report, *, subject: Subject, today: date) -> list[Attachment]:
    """The report's own files, each decided on its own labels (a file the reader may not see
    is not listed at all), each marked with whether the reader may open it (``downloadable``:
    a file not yet scanned, or refused by the scan, is listed but not opened)."""
    rows = session.execute(select(Attachment).where(Attachment.report_id == report.id, Attachment.message_id.is_(None))
                           .order_by(Attachment.created_at, Attachment.id)).scalars()
    return visible(rows, subject=subject, today=today)


def visible(files, *, subject: Subject, today: date) -> list[Attachment]:
    """The files this person may see, each with ``downloadable`` set by the policy."""
    out = []
    for a in files:
        if decide(subject, Action.ATTACHMENT_SEE, a, today=today).allowed:
            a.downloadable = decide(subject, Action.ATTACHMENT_DOWNLOAD, a, today=today).allowed
            out.append(a)
    return out


def delete(session: Session, store: BlobStore, att: Attachment, *, actor, ip: str | None) -> None:
    """The route asked ``attachment.delete`` on this file's own labels (the company's, of its
    working copy, not frozen in a version)."""
    if att.report.status not in EDITABLE:
        raise ServiceError(_("Files can be removed only while the report is a draft or returned for correction."),
                           reason="not_editable")
    record(session, "attachment.delete", actor=actor, source_ip=ip, target_type="attachment", target_id=att.id,
           case_ref=att.report.reference, org_id=att.report.organisation_id)
    session.delete(att)
    session.flush()
    if isinstance(store, DatabaseBlobStore):
        store.delete(att.blob_key)  # same transaction


def seal_bytes(session: Session, store: BlobStore, keyring: Keyring, data: bytes, *,
               purpose: str) -> tuple[UploadSink, str, bytes]:
    """Encrypt a document the portal generated (an inform notice) into the blob store, whole:
    on return the blob is complete (the directory store's file in place, the database store's
    last chunk flushed into ``session``), before any row naming it can commit. The caller
    stores the wrapped key and calls ``release(session, sink)`` in that same transaction, or
    aborts the sink on any failure."""
    sink = UploadSink(store, max(len(data), 1))
    try:
        sink.write(data)
        sink.seek(0)
        kek_id, wrapped = sink.wrap_key(session, keyring, purpose)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return sink, kek_id, wrapped


def release(session: Session, sink: UploadSink) -> None:
    """In the transaction that stores the sink's wrapped key: its lease ends with it."""
    _release(session, sink)


def open_bytes(store: BlobStore, keyring: Keyring, *, uid: str, blob_key: str, kek_id: str, wrapped: bytes) -> Iterator[bytes]:
    return opened(store, keyring, uid=uid, blob_key=blob_key, kek_id=kek_id, wrapped=wrapped)
