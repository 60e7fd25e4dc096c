"""Informs (DESIGN §6): every rule on the server, in one place.

Drafting and editing by a case worker while the case is under review; four-eyes approval by
an approver who is not the drafter and holds the case's compartment (the policy); issuance
numbers it INF-YYYY-NNNN gap-free, renders the official notice, stores it encrypted with its
SHA-256, moves the case to inform_issued and notifies the company; the company acknowledges;
an approver may revoke with a reason. Two approvers acting at once yield one issuance: the
inform row is locked and its status re-read before anything changes."""
from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, lazyload

from portal.access.levels import LEVEL_LABELS, Level
from portal.access.policy import Action, Labels, Subject, compartment_set, decide
from portal.attachments import services as blobs
from portal.audit.trail import record
from portal.access.policy import compartment_text
from portal.core.i18n import gettext as _
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import JST
from portal.core.web import settings as web_settings
from portal.db import utcnow
from portal.notifications import notify
from portal.informs.models import DRAFT, ISSUED, PENDING, REJECTED, REVOKED, Inform, InformEvent
from portal.reports import services as reports
from portal.reports import states as S
from portal.reports.models import Report

log = logging.getLogger(__name__)
MAX_TEXT = 20000
DEFAULT_LEGAL_BASIS = "外国為替及び外国貿易法第55条の8、外国為替令第18条の8第1項"
EDITABLE = (DRAFT, REJECTED)


@dataclass(frozen=True)
class InformView:
    """An inform as one reader may see it: the parts they may not read are absent (None), so
    no template ever decides who sees the internal rationale."""

    inform: Inform
    history: list
    rationale: str | None
    internal_comments: bool
    # The decisions the reader may take on it (Action values), for the buttons offered.
    may: frozenset[str] = frozenset()


def readable(session: Session, report: Report, *, subject: Subject, today: date) -> list[InformView]:
    out = []
    for i in for_report(session, report):
        if not decide(subject, Action.INFORM_VIEW, i, today=today).allowed:
            continue
        internal = decide(subject, Action.INTERNAL_NOTE_READ, i.rationale_labels(), today=today).allowed
        may = frozenset(str(a) for a in (Action.INFORM_APPROVE, Action.INFORM_ACKNOWLEDGE, Action.INFORM_REVOKE)
                        if decide(subject, a, i, today=today).allowed)
        out.append(InformView(i, history(session, i), i.internal_rationale if internal else None, internal, may))
    return out


def _ask(subject: Subject, action: Action, target, today: date) -> None:
    d = decide(subject, action, target, today=today)
    if not d.allowed:
        raise Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)


def _event(session: Session, inform: Inform, actor, step: str, comment: str | None = None) -> None:
    session.add(InformEvent(inform_id=inform.id, actor_id=actor.id if actor else None, step=step, comment=comment))


def _text(value: str | None, field: str, message: str, *, required: bool = True) -> str:
    v = (value or "").strip()
    if required and not v:
        raise ServiceError(message, field=field, reason=f"{field}_missing")
    if len(v) > MAX_TEXT:
        raise ServiceError(_("Enter at most %(n)d characters.", n=MAX_TEXT), field=field, reason="too_long")
    return v


@lru_cache(maxsize=1)
def _for_report_statement():
    # Built once, the case bound at execution (the case page's statements: portal.reports.services).
    # The case is the caller's (already loaded): no join to it per inform.
    return (select(Inform).where(Inform.report_id == bindparam("report_id"))
            .options(lazyload(Inform.report)).order_by(Inform.id))


def for_report(session: Session, report: Report) -> list[Inform]:
    return list(session.execute(_for_report_statement(), {"report_id": report.id}).scalars())


def history(session: Session, inform: Inform) -> list[InformEvent]:
    return list(session.execute(select(InformEvent).where(InformEvent.inform_id == inform.id)
                                .order_by(InformEvent.at, InformEvent.id)).scalars())


def _check_fields(legal_basis, reasons, conditions, rationale, rationale_classification):
    lb = _text(legal_basis, "legal_basis", _("Enter the legal basis."))
    rs = _text(reasons, "reasons", _("Enter the reasons the company will read."))
    cd = _text(conditions, "conditions", "", required=False)
    ra = _text(rationale, "internal_rationale", _("Enter the internal rationale."))
    lvl = Level.parse(rationale_classification or "")
    if lvl is None:
        raise ServiceError(_("Choose a classification from the list."), field="rationale_classification",
                           reason="unknown_level")
    return lb, rs, cd, ra, lvl


def draft(session: Session, report: Report, *, legal_basis: str, reasons: str, conditions: str,
          internal_rationale: str, rationale_classification: str, subject: Subject, actor, today: date,
          ip: str | None) -> Inform:
    _ask(subject, Action.INFORM_DRAFT, report, today)
    if report.status != S.UNDER_REVIEW:
        raise ServiceError(_("An inform can be drafted only while the case is under review."), reason="not_under_review")
    if any(i.status in (DRAFT, PENDING, REJECTED, ISSUED) for i in for_report(session, report)):
        raise ServiceError(_("This case already has an inform in progress or issued."), reason="inform_exists")
    lb, rs, cd, ra, lvl = _check_fields(legal_basis, reasons, conditions, internal_rationale, rationale_classification)
    _writable_level(report, None, lvl, subject, today)
    inform = Inform(report_id=report.id, legal_basis=lb, reasons=rs, conditions=cd, internal_rationale=ra,
                    rationale_classification=lvl.value, drafted_by_id=actor.id,
                    classification=report.classification, compartments=compartment_text(report.case_compartments()))
    inform.report = report
    _ask(subject, Action.INTERNAL_NOTE_POST, _rationale_labels(inform), today)
    session.add(inform)
    session.flush()
    _event(session, inform, actor, "draft")
    record(session, "inform.draft", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
           case_ref=report.reference, org_id=report.organisation_id)
    return inform


def rationale_levels(report: Report, inform: Inform | None = None, *, subject: Subject, today: date) -> list[Level]:
    """The classifications this person may give an inform's internal rationale on this case
    (the forms offer only these): each decided on the labels the rationale is written under."""
    compartments = (compartment_set(inform.compartments) if inform is not None else frozenset()) \
        or report.case_compartments()
    return [lvl for lvl in Level
            if decide(subject, Action.INTERNAL_NOTE_POST,
                      Labels(org_id=report.organisation_id, classification=lvl.value, compartments=compartments,
                             audience="government", internal=True), today=today).allowed]


def rationale_choices(report: Report, inform: Inform | None = None, *, subject: Subject,
                      today: date) -> list[tuple[str, str]]:
    return [(lvl.value, LEVEL_LABELS[lvl]) for lvl in rationale_levels(report, inform, subject=subject, today=today)]


def _writable_level(report: Report, inform: Inform | None, level: Level, subject: Subject, today: date) -> None:
    """A level the form did not offer is refused beside its field, the typed texts kept."""
    if level not in rationale_levels(report, inform, subject=subject, today=today):
        raise ServiceError(_("Your clearance does not allow you to write the rationale at this classification. Choose one from the list."),
                           field="rationale_classification", reason="clearance_level")


def _rationale_labels(inform: Inform, classification: str | None = None):
    """Where the rationale is written: METI-only, at its own level (rule 6 for the writer)."""
    from dataclasses import replace

    labels = inform.rationale_labels()
    return replace(labels, audience="government",
                   classification=classification or labels.classification)


def update(session: Session, inform: Inform, *, legal_basis: str, reasons: str, conditions: str,
           internal_rationale: str, rationale_classification: str, subject: Subject, actor, today: date,
           ip: str | None) -> None:
    _ask(subject, Action.INFORM_DRAFT, inform, today)
    _lock(session, inform)
    if inform.status not in EDITABLE:
        raise ServiceError(_("The draft has been sent for approval and can no longer be edited."), reason="not_editable")
    if inform.drafted_by_id != actor.id:
        raise ServiceError(_("Only the drafter edits a draft."), reason="not_drafter")
    lb, rs, cd, ra, lvl = _check_fields(legal_basis, reasons, conditions, internal_rationale, rationale_classification)
    _writable_level(inform.report, inform, lvl, subject, today)
    _ask(subject, Action.INTERNAL_NOTE_POST, _rationale_labels(inform, lvl.value), today)
    inform.legal_basis, inform.reasons, inform.conditions = lb, rs, cd
    inform.internal_rationale, inform.rationale_classification = ra, lvl.value
    inform.updated_at = utcnow()
    _event(session, inform, actor, "edit")
    record(session, "inform.edit", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
           case_ref=inform.report.reference)


def send_for_approval(session: Session, inform: Inform, *, subject: Subject, actor, today: date, ip: str | None,
                      base_url: str = "") -> None:
    _ask(subject, Action.INFORM_DRAFT, inform, today)
    _lock(session, inform)
    if inform.status not in EDITABLE:
        raise ServiceError(_("This draft is not waiting to be sent."), reason="not_editable")
    if inform.drafted_by_id != actor.id:
        raise ServiceError(_("Only the drafter sends a draft for approval."), reason="not_drafter")
    inform.status = PENDING
    _event(session, inform, actor, "send_for_approval")
    record(session, "inform.send_for_approval", actor=actor, source_ip=ip, target_type="inform",
           target_id=inform.id, case_ref=inform.report.reference)
    # Every approver the policy lets decide it is told (in the portal and by mail), the drafter
    # never: four eyes. Nobody else would know the draft waits.
    notify.notify(session, [u for u in approvers(session) if u.id != inform.drafted_by_id], inform.report,
                  "approval", base_url, action=Action.INFORM_APPROVE, about=inform)


def approvers(session: Session) -> list:
    from portal.access.levels import Role
    from portal.auth.models import User

    return list(session.execute(select(User).where(User.active.is_(True), User.role == Role.APPROVER.value)
                                .order_by(User.id)).scalars())


def confirmation(inform: Inform) -> str:
    """What the confirmation page carries and approval requires: a digest of the notice's
    texts as the approver saw them. The case page's old one-click form does not carry it, and a
    draft changed after the page was opened no longer matches it."""
    h = hashlib.sha256()
    for part in (str(inform.id), inform.status, inform.updated_at.isoformat() if inform.updated_at else "",
                 inform.legal_basis or "", inform.reasons or "", inform.conditions or ""):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def awaiting_approval(session: Session, *, subject: Subject, actor, today: date, limit: int = 50) -> list[Inform]:
    """The drafts this approver may decide (決裁待ち): pending, on cases they may see, not their own."""
    rows = session.execute(
        select(Inform).join(Report, Report.id == Inform.report_id)
        .where(Inform.status == PENDING, Inform.drafted_by_id != actor.id, reports.visible_to_government())
        .order_by(Inform.updated_at, Inform.id).limit(limit),
        reports.government_params(session, subject)).scalars()
    return [i for i in rows if decide(subject, Action.INFORM_APPROVE, i, today=today).allowed]


def to_acknowledge(session: Session, *, subject: Subject, today: date, limit: int = 50) -> list[Inform]:
    """The company's issued informs nobody has acknowledged yet."""
    rows = session.execute(
        select(Inform).join(Report, Report.id == Inform.report_id)
        .where(Inform.status == ISSUED, Inform.acknowledged_at.is_(None), reports.visible_to_company())
        .order_by(Inform.issued_at, Inform.id).limit(limit),
        reports.company_params(session, subject)).scalars()
    return [i for i in rows if decide(subject, Action.INFORM_ACKNOWLEDGE, i, today=today).allowed]


def awaiting_approval_column(report_id):
    """Whether a case has a draft awaiting approval, as a correlated column (the queue's mark)."""
    from sqlalchemy import exists

    return exists().where(Inform.report_id == report_id, Inform.status == PENDING)


def _lock(session: Session, inform: Inform) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Inform.id).where(Inform.id == inform.id).with_for_update())
    session.refresh(inform)


def _four_eyes(session: Session, inform: Inform, subject: Subject, actor, today: date, action: Action) -> None:
    _ask(subject, action, inform, today)
    _lock(session, inform)
    if inform.drafted_by_id == actor.id:
        raise Refused(_("You drafted this inform: another approver must decide it."), reason="four_eyes")
    if inform.status != PENDING:
        raise ServiceError(_("This inform is not awaiting approval."), reason="not_pending")


def reject(session: Session, inform: Inform, *, comment: str, subject: Subject, actor, today: date,
           ip: str | None) -> None:
    _four_eyes(session, inform, subject, actor, today, Action.INFORM_APPROVE)
    comment = _text(comment, "comment", _("Enter the reason for rejecting the draft."))
    inform.status = REJECTED
    inform.decided_by_id, inform.decided_at, inform.decision_comment = actor.id, utcnow(), comment
    _event(session, inform, actor, "reject", comment)
    record(session, "inform.reject", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
           case_ref=inform.report.reference)


def approve(session: Session, inform: Inform, *, comment: str | None, confirmed: str | None, subject: Subject, actor,
            today: date, ip: str | None, store, keyring, base_url: str, settings=None) -> Inform:
    """Approve and issue, in the caller's transaction. The notice is signed with the ministry's
    key (refused as a whole, before any change, when no key can be used), and the signed bytes
    are stored encrypted: complete in the blob store before this returns (on the database
    store, its chunks are in this same transaction), so the row naming it can never commit
    without it. On a failure after this returns the caller aborts ``inform._pending_sink``
    (it removes the blob)."""
    from portal.informs import signing

    settings = settings or web_settings()
    _four_eyes(session, inform, subject, actor, today, Action.INFORM_APPROVE)
    if not hmac.compare_digest((confirmed or "").encode(), confirmation(inform).encode()):
        raise ServiceError(_("Open the confirmation page and check the notice before issuing it."),
                           reason="not_confirmed")
    try:
        signing.material(settings)
    except signing.SigningUnavailable as exc:
        log.error("inform %s not issued: %s", inform.id, exc)
        raise ServiceError(_("The notice cannot be signed, so nothing was issued: the ministry's signing key is "
                             "not available. The administrators have been told."),
                           reason="signing_unavailable") from None
    report = inform.report
    # The state table's "issue_inform" ends the case and tells the company.
    reports.transition(session, report, "issue_inform", subject=subject, actor=actor, today=today, ip=ip,
                       base_url=base_url)
    inform.number = reports.next_reference(session, "INF", today.year, width=4)
    inform.status = ISSUED
    inform.decided_by_id, inform.decided_at = actor.id, utcnow()
    inform.decision_comment = (comment or "").strip() or None
    inform.issued_at = utcnow()
    # Both notices, signed, before anything is stored: a signing failure leaves nothing behind.
    pdfs = {lang: signed_notice(session, inform, lang, settings) for lang in NOTICE_LANGS}
    pending = PendingSinks()
    inform._pending_sink = pending  # type: ignore[attr-defined]  # the caller aborts it on a later failure
    try:
        for lang, pdf in pdfs.items():
            sink, kek_id, wrapped = blobs.seal_bytes(session, store, keyring, pdf, purpose="notice")
            pending.sinks.append(sink)
            p = _NOTICE_PREFIX[lang]
            for name, value in (("uid", sink.uid), ("blob_key", sink.blob_key), ("kek_id", kek_id),
                                ("wrapped_dek", wrapped), ("sha256", sink.encryptor.plaintext_sha256),
                                ("size", sink.size)):
                setattr(inform, p + name, value)
        session.flush()
        _event(session, inform, actor, "approve_and_issue", inform.decision_comment)
        record(session, "inform.issue", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
               case_ref=report.reference, org_id=report.organisation_id,
               details={"number": inform.number, "sha256": inform.notice_sha256,
                        "sha256_en": inform.notice_en_sha256})
        for sink in pending.sinks:
            blobs.release(session, sink)
    except BaseException:
        pending.abort()
        raise
    return inform


NOTICE_LANGS = ("ja", "en")
_NOTICE_PREFIX = {"ja": "notice_", "en": "notice_en_"}


class PendingSinks:
    """The notices sealed by one approval; abort() removes them all (their row will not commit)."""

    def __init__(self) -> None:
        self.sinks: list = []

    def commit(self) -> None:
        for sink in self.sinks:
            sink.commit()

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()


def stored(inform: Inform, lang: str) -> bool:
    """Whether the notice in ``lang`` was signed and stored at issue."""
    return bool(getattr(inform, _NOTICE_PREFIX[lang] + "blob_key", None))


def notice_sha256(inform: Inform, lang: str) -> str | None:
    return getattr(inform, _NOTICE_PREFIX[lang] + "sha256", None)


PREVIEW_NUMBER = {"ja": "（発出時に採番）", "en": "(numbered on issue)"}


def notice_data(session: Session, inform: Inform, lang: str, *, preview_on: date | None = None, settings=None):
    """The notice's contents; with ``preview_on``, as it will read if issued that day (the
    number is given only on issue). The English notice cites the legal basis in English."""
    from portal.informs.notice import NoticeData
    from portal.informs.statutes import legal_basis_en
    from portal.reports.reference_data import country_name

    settings = settings or web_settings()

    report = inform.report
    tech = report.technology
    if preview_on is not None:
        number, issued = PREVIEW_NUMBER.get(lang, PREVIEW_NUMBER["en"]), preview_on
    else:
        number, issued = inform.number, inform.issued_at.astimezone(JST).date()
    return NoticeData(
        number=number, issued_on=issued, addressee_name=report.organisation.name,
        corporate_number=report.organisation.corporate_number, addressee_address=report.organisation.address,
        report_reference=report.reference, technology_ja=tech.name_ja if tech else "",
        technology_en=tech.name_en if tech else "",
        destination=country_name(report.destination_country, lang),
        legal_basis=inform.legal_basis if lang == "ja" else legal_basis_en(inform.legal_basis),
        reasons=inform.reasons, conditions=inform.conditions,
        issuer="経済産業大臣" if lang == "ja" else "Minister of Economy, Trade and Industry",
        office=getattr(settings, f"notice_office_{lang}"), contact=getattr(settings, f"notice_contact_{lang}"),
        appeal=getattr(settings, f"notice_appeal_{lang}"))


def notice_pdf(session: Session, inform: Inform, lang: str, today: date | None = None) -> bytes:
    """The notice rendered now, unsigned (an English notice of an inform issued before the
    English notice was stored)."""
    from portal.informs.notice import render_notice

    return render_notice(notice_data(session, inform, lang), lang)


def signed_notice(session: Session, inform: Inform, lang: str, settings) -> bytes:
    """The notice as issued: rendered, then signed at the approval time by the issuing office."""
    from portal.informs import signing
    from portal.informs.notice import compose

    office = getattr(settings, f"notice_office_{lang}")
    rendered = compose(notice_data(session, inform, lang, settings=settings), lang,
                       signature=signing.signature_lines(office, inform.issued_at, lang))
    try:
        return signing.sign(settings, rendered, signed_at=inform.issued_at, office=office, lang=lang)
    except signing.SigningUnavailable as exc:
        log.error("inform %s not issued: %s", inform.id, exc)
        raise ServiceError(_("The notice cannot be signed, so nothing was issued: the ministry's signing key is "
                             "not available. The administrators have been told."),
                           reason="signing_unavailable") from None


def may_decide(inform: Inform, *, subject: Subject, actor, today: date) -> None:
    """Whether ``actor`` may open the approval of ``inform`` (its confirmation page, its
    preview): the policy, and four eyes."""
    _ask(subject, Action.INFORM_APPROVE, inform, today)
    if inform.drafted_by_id == actor.id:
        raise Refused(_("You drafted this inform: another approver must decide it."), reason="four_eyes")


def preview_pdf(session: Session, inform: Inform, *, subject: Subject, actor, today: date) -> bytes:
    """The notice as it will be sent if approved today, rendered and not stored."""
    from portal.informs.notice import render_notice

    may_decide(inform, subject=subject, actor=actor, today=today)
    if inform.status != PENDING:
        raise ServiceError(_("This inform is not awaiting approval."), reason="not_pending")
    return render_notice(notice_data(session, inform, "ja", preview_on=today), "ja")


def acknowledge(session: Session, inform: Inform, *, subject: Subject, actor, today: date, ip: str | None) -> None:
    _ask(subject, Action.INFORM_ACKNOWLEDGE, inform, today)
    _lock(session, inform)
    if inform.status != ISSUED:
        raise ServiceError(_("Only an issued inform can be acknowledged."), reason="not_issued")
    if inform.acknowledged_at is not None:
        return  # a second click: already done
    inform.acknowledged_by_id, inform.acknowledged_at = actor.id, utcnow()
    _event(session, inform, actor, "acknowledge")
    record(session, "inform.acknowledge", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
           case_ref=inform.report.reference, org_id=inform.report.organisation_id)


def record_licence_application(session: Session, inform: Inform, ref: str, *, subject: Subject, actor, today: date,
                               ip: str | None) -> None:
    _ask(subject, Action.INFORM_ACKNOWLEDGE, inform, today)
    if inform.status != ISSUED or inform.acknowledged_at is None:
        raise ServiceError(_("Acknowledge the inform before recording the licence application."), reason="not_acknowledged")
    ref = _text(ref, "licence_application_ref", _("Enter the reference of your licence application."))
    if len(ref) > 100:
        raise ServiceError(_("Enter at most %(n)d characters.", n=100), field="licence_application_ref", reason="too_long")
    inform.licence_application_ref = ref
    _event(session, inform, actor, "licence_application", ref)
    record(session, "inform.licence_application", actor=actor, source_ip=ip, target_type="inform",
           target_id=inform.id, case_ref=inform.report.reference, org_id=inform.report.organisation_id)


def revoke(session: Session, inform: Inform, *, reason: str, subject: Subject, actor, today: date, ip: str | None,
           base_url: str) -> None:
    _ask(subject, Action.INFORM_REVOKE, inform, today)
    _lock(session, inform)
    if inform.status != ISSUED:
        raise ServiceError(_("Only an issued inform can be revoked."), reason="not_issued")
    reason = _text(reason, "reason", _("Enter the reason for the revocation."))
    inform.status = REVOKED
    inform.revoked_by_id, inform.revoked_at, inform.revoke_reason = actor.id, utcnow(), reason
    _event(session, inform, actor, "revoke", reason)
    record(session, "inform.revoke", actor=actor, source_ip=ip, target_type="inform", target_id=inform.id,
           case_ref=inform.report.reference, org_id=inform.report.organisation_id)
    notify.notify(session, notify.company_recipients(session, inform.report.organisation_id), inform.report,
                  "inform_revoked", base_url)


def notice_stream(store, keyring, inform: Inform, lang: str = "ja"):
    p = _NOTICE_PREFIX[lang]
    return blobs.open_bytes(store, keyring, uid=getattr(inform, p + "uid"), blob_key=getattr(inform, p + "blob_key"),
                            kek_id=getattr(inform, p + "kek_id"), wrapped=getattr(inform, p + "wrapped_dek"))


@dataclass(frozen=True)
class NoticeCheck:
    """The stored notice read back and checked: its bytes against their SHA-256, its signature
    against the portal's CA. ``status``: valid | unsigned (issued before notices were signed) |
    damaged | unreadable | revoked | expired | untrusted (the last three: the certificate)."""

    status: str
    data: bytes | None = None
    verdict: object | None = None
    reason: str = ""

    @property
    def servable(self) -> bool:
        """Intact bytes: the file is the one issued, whatever its certificate's state now."""
        return self.status not in ("damaged", "unreadable")


def check_stored_notice(store, keyring, settings, inform: Inform, lang: str = "ja") -> NoticeCheck:
    """Read and check the whole stored notice (a notice is small): nothing unverified is served."""
    from crypto import DecryptionError
    from portal.informs import signing

    p = _NOTICE_PREFIX[lang]
    try:
        data = b"".join(notice_stream(store, keyring, inform, lang))
    except blobs.BlobUnreadable as e:
        return NoticeCheck("unreadable", reason=e.reason)
    except DecryptionError:
        return NoticeCheck("damaged", reason="integrity")
    if len(data) != getattr(inform, p + "size") or hashlib.sha256(data).hexdigest() != getattr(inform, p + "sha256"):
        return NoticeCheck("damaged", reason="sha256_mismatch")
    verdict = signing.verify(settings, data)
    if verdict.status == "unsigned" and not verdict.signed:
        return NoticeCheck("unsigned", data, verdict)
    if verdict.status in ("modified", "unsigned", "unreadable"):
        return NoticeCheck("damaged", None, verdict, reason="signature_invalid")
    return NoticeCheck(verdict.status, data, verdict)
