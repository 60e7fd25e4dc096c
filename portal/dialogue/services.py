"""The dialogue: per case an external channel (company ⇄ METI) and an internal one (METI
only); append-only messages, classification per message, replies that quote, requests for
information with a due date, read state per person."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.orm import Session, lazyload

from portal.access.levels import Level
from portal.access.policy import Action, Labels, Subject, compartment_text, decide
from portal.attachments import services as attachments
from portal.audit.trail import record
from portal.calendar import add_business_days, is_business_day, window
from portal.core.i18n import gettext as _
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst
from portal.notifications import notify
from portal.dialogue import unread
from portal.dialogue.models import EXTERNAL, INTERNAL, Message, ReadMark, case_part
from portal.reports import services as reports
from portal.reports import states as S
from portal.reports.models import Report

MAX_BODY = 20000
OPEN_FOR_DIALOGUE = S.OPEN_STATUSES  # a case takes messages until it ends
CHANNELS = (EXTERNAL, INTERNAL)


def read_action(channel: str) -> Action:
    return Action.MESSAGE_READ if channel == EXTERNAL else Action.INTERNAL_NOTE_READ


def post_action(channel: str) -> Action:
    return Action.MESSAGE_POST if channel == EXTERNAL else Action.INTERNAL_NOTE_POST


def channel_labels(report: Report, channel: str, classification: str, today: date) -> Labels:
    base = report.access_labels()
    return Labels(org_id=base.org_id, classification=classification, compartments=base.compartments,
                  audience="company" if channel == EXTERNAL else "government", internal=channel == INTERNAL,
                  audience_facility_valid=report.organisation.facility_clearance_valid(today), draft=base.draft)


@dataclass(frozen=True)
class Channel:
    """A case's channel as the object a route acts on: posting asks the policy about the
    channel (its audience, METI-only or not, the case's compartments) before any body is read."""

    report: Report
    name: str

    def policy_target(self) -> Labels:
        # To take part in a channel one must be able to read the case it belongs to (its
        # classification, compartments, the company's facility clearance); each message is
        # then decided on its own classification by ``post``.
        return channel_labels(self.report, self.name, self.report.classification, today_jst())

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("report", self.report.id)


def channel_of(session: Session, report: Report | None, name: str) -> Channel | None:
    """Only the two registered spellings name a channel (``INTERNAL``, ``internal%00``: none)."""
    if report is None or name not in CHANNELS:
        return None
    return Channel(report, name)


def writable_levels(report: Report, channel: str, *, subject: Subject, today: date) -> tuple[list[str], dict[str, list[str]]]:
    """The classifications this person may post at in the channel (the form offers only these),
    and the others by the policy's reason for refusing them."""
    ok: list[str] = []
    withheld: dict[str, list[str]] = {}
    for lvl in Level:
        d = decide(subject, post_action(channel), channel_labels(report, channel, lvl.value, today), today=today)
        if d.allowed:
            ok.append(lvl.value)
        else:
            withheld.setdefault(d.reason, []).append(lvl.value)
    return ok, withheld


# Refusals that concern only the level chosen in the form (the route already decided that the
# person may post in the channel): said beside the field, the message kept.
LEVEL_REASONS = frozenset({"write_down", "clearance_level", "facility_clearance"})


def request_due(due: date | None, today: date) -> tuple[date, date | None]:
    """A request's due date on the government calendar: one that falls on a closed day (a
    weekend, a holiday, the year-end closure) moves to the next open day, as 行政機関の休日に
    関する法律 第2条 moves any deadline that ends on a day the government is closed. Returns the
    due date and, when it moved, the day that was asked for."""
    if due is None:
        raise ServiceError(_("Enter the date by which the company must answer the request."), field="due_date",
                           reason="due_missing")
    if not today < due <= window(today, 0, 1)[1]:
        raise ServiceError(_("Enter a response due date after today and within a year."), field="due_date",
                           reason="bad_due_date")
    if is_business_day(due):
        return due, None
    return add_business_days(due, 0), due


def default_due(today: date, days: int) -> date:
    """The due date a request form offers: ``days`` business days after today."""
    return add_business_days(today, max(days, 1))


def post(session: Session, report: Report, *, channel: str, body: str, classification: str,
         reply_to: int | None, due: date | None, subject: Subject, actor, today: date, ip: str | None,
         base_url: str, request: bool | None = None) -> Message:
    """Checks, in order: the channel exists, the case is open, the policy (role, clearance,
    organisation, no write-down), the reply target, the body, a request's due date. Nothing is
    written on refusal. ``request``: sent as a request for information (default: a due date is
    given); a request always has a due date, on an open day (``request_due``)."""
    if request is None:
        request = due is not None
    if channel not in CHANNELS:
        raise ServiceError(_("This channel does not exist."), reason="unknown_channel")
    lvl = Level.parse(classification or "")
    if lvl is None:
        raise ServiceError(_("Choose a classification from the list."), field="classification", reason="unknown_level")
    d = decide(subject, post_action(channel), channel_labels(report, channel, lvl.value, today), today=today)
    if not d.allowed:
        if d.reason == "write_down":
            raise ServiceError(_("A message classified %(level)s cannot be sent to the company: the company may not read it. Lower the classification or write an internal note.",
                                 level=lvl.label), field="classification", reason="write_down")
        if d.reason == "clearance_level":
            raise ServiceError(_("Your clearance does not cover this classification. Choose a lower one, or ask your security officer."),
                               field="classification", reason=d.reason)
        if d.reason == "facility_clearance":
            raise ServiceError(_("Your organisation has no valid facility clearance, so it cannot write at this classification. Choose a lower one."),
                               field="classification", reason=d.reason)
        raise Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)
    if report.status not in OPEN_FOR_DIALOGUE:
        raise ServiceError(_("This case is closed: no more messages can be added."), reason="case_closed")
    body = (body or "").strip()
    if not body:
        raise ServiceError(_("Write your message."), field="body", reason="empty_body")
    if len(body) > MAX_BODY:
        raise ServiceError(_("Enter at most %(n)d characters.", n=MAX_BODY), field="body", reason="too_long")
    if reply_to is not None:
        target = session.get(Message, reply_to)
        # A message the poster may not read answers like one that does not exist.
        if target is None or target.report_id != report.id or target.channel != channel \
                or not decide(subject, read_action(channel), target, today=today).allowed:
            raise ServiceError(_("The message you are replying to does not exist in this thread."),
                               field="body", reason="bad_reply")
    is_company = actor.role_enum.is_company
    if (request or due is not None) and (is_company or channel != EXTERNAL):
        raise ServiceError(_("Only METI can set a response due date, in the external channel."),
                           field="due_date", reason="due_not_allowed")
    asked_for = None
    if request:
        due, asked_for = request_due(due, today)
    else:
        due = None
    msg = Message(report_id=report.id, channel=channel, author_id=actor.id, body=body, classification=lvl.value,
                  compartments=compartment_text(report.case_compartments()),
                  reply_to_id=reply_to, is_request=due is not None, due_date=due)
    msg.report = report
    msg.due_asked_for = asked_for  # not stored: the view tells the sender the due date moved
    session.add(msg)
    session.flush()
    unread.message_written(session, msg)
    record(session, "message.post", actor=actor, source_ip=ip, target_type="message", target_id=msg.id,
           case_ref=report.reference, org_id=report.organisation_id,
           details={"channel": channel, "classification": lvl.value, "request": due is not None})
    moved = False  # a transition tells the other side itself (the state table's notify)
    if due is not None:
        if report.status == S.SUBMITTED:
            reports.transition(session, report, "take", subject=subject, actor=actor, today=today, ip=ip,
                               base_url=base_url)
        reports.transition(session, report, "request_info", subject=subject, actor=actor, today=today, ip=ip,
                           # The history keeps the date itself; each reader sees it in their own words.
                           comment=due.isoformat(), due=due,
                           base_url=base_url)
        moved = True
    elif is_company and report.status == S.AWAITING:
        reports.transition(session, report, "answer", subject=subject, actor=actor, today=today, ip=ip,
                           base_url=base_url)
        moved = True
    _mark(session, actor.id, report.id, channel, msg.id, role=actor.role)
    if moved:
        return msg
    # Tell the other side.
    from portal.auth.models import User

    if channel == INTERNAL:
        recipients = [session.get(User, report.assignee_id)] if report.assignee_id not in (None, actor.id) else []
    elif is_company:
        recipients = [session.get(User, report.assignee_id)] if report.assignee_id else []
    else:
        recipients = notify.company_recipients(session, report.organisation_id)
    notify.notify(session, recipients, report, "message", base_url, action=read_action(channel), about=msg)
    return msg


def thread(session: Session, report: Report, channel: str) -> list[Message]:
    return threads(session, report, (channel,)).get(channel, [])


def threads(session: Session, report: Report, channels: Sequence[str]) -> dict[str, list[Message]]:
    """The messages of the case's ``channels`` by channel, each with its files."""
    return _threads(session, report, channels)[0]


def _threads(session: Session, report: Report, channels: Sequence[str],
             reader_id: int | None = None) -> tuple[dict[str, list[Message]], dict[str, int | None]]:
    """The messages by channel, each with its files, in one statement (a message's files joined
    to it: a case page pays for each statement it makes); with ``reader_id``, the same
    statement also says how far that person had read each channel that has messages (None:
    not at all)."""
    if not channels:
        return {}, {}
    params = {"report_id": report.id, "channels": list(channels)}
    if reader_id is not None:
        params["reader_id"] = reader_id
    rows = session.execute(_threads_statement(reader_id is not None), params)
    by_channel: dict[str, list[Message]] = {}
    read_to: dict[str, int | None] = {}
    last = None
    for m, a, *mark in rows:
        if m is not last:
            m.files = []
            by_channel.setdefault(m.channel, []).append(m)
            if mark:
                read_to[m.channel] = mark[0]
            last = m
        if a is not None:
            m.files.append(a)
    return by_channel, read_to


@lru_cache(maxsize=2)
def _threads_statement(with_read_mark: bool):
    """Built once per shape, the case, channels and reader bound at execution: building it
    with its options and cache key was a quarter of a millisecond of each case page."""
    from portal.attachments.models import Attachment

    columns = [Message, Attachment]
    if with_read_mark:
        columns.append(select(ReadMark.last_read_id).where(
            ReadMark.user_id == bindparam("reader_id"), ReadMark.report_id == Message.report_id,
            ReadMark.channel == Message.channel).scalar_subquery())
    # The case is already loaded: no join to it (with its sealed working copy) per row; a
    # file's message is the row's own (in the identity map, no statement).
    return (select(*columns)
            .outerjoin(Attachment, Attachment.message_id == Message.id)
            .where(Message.report_id == bindparam("report_id"),
                   Message.channel.in_(bindparam("channels", expanding=True)))
            .options(lazyload(Message.report), lazyload(Attachment.report), lazyload(Attachment.message))
            .order_by(Message.id, Attachment.id))


def readable_threads(session: Session, report: Report, *, subject: Subject, user_id: int,
                     today: date) -> list[tuple[str, list[Message]]]:
    """The channels this person may read, each with the messages whose own classification
    they may read; reading marks them read."""
    if report.status == S.DRAFT:
        return []
    readable = [ch for ch in CHANNELS
                if decide(subject, read_action(ch), channel_labels(report, ch, "public", today), today=today).allowed]
    loaded, read_to = _threads(session, report, readable, reader_id=user_id)
    out = []
    moved = False
    # Every message is decided on its own labels; messages with equal labels (the same level and
    # compartments in the same channel: most of a thread) share one decision, which the policy
    # makes from the labels, the person and the day alone.
    case = case_part(report)
    decided: dict[tuple, bool] = {}

    def may_read(m: Message, action: Action) -> bool:
        labels = m.labels_in(case)
        if (action, labels) not in decided:
            decided[action, labels] = decide(subject, action, labels, today=today).allowed
        return decided[action, labels]

    for ch in readable:
        msgs = [m for m in loaded.get(ch, []) if may_read(m, read_action(ch))]
        for m in msgs:  # each file on its own labels too
            m.files = attachments.visible(m.files, subject=subject, today=today)
        if msgs:
            moved = _mark(session, user_id, report.id, ch, msgs[-1].id, role=subject.role, settle=False,
                          read_to=read_to.get(ch)) or moved
        out.append((ch, msgs))
    if moved and subject.role in unread.kept_for():
        unread.settle(session, user_id, report.id)  # once for both channels
    return out


_NOT_READ = object()


def _mark(session: Session, user_id: int, report_id: int, channel: str, last_id: int, *,
          role: str | None = None, settle: bool = True, read_to: int | None | object = _NOT_READ) -> bool:
    """Move the person's read mark forward (never back); their unread case row follows it
    (``unread.settle``; the caller does it when ``settle`` is false), unless ``role`` says none
    is kept for them. ``read_to``: where the mark stood as the caller read it (None: there is
    none), read here when not given. Returns whether the mark moved."""
    where = (ReadMark.user_id == user_id, ReadMark.report_id == report_id, ReadMark.channel == channel)
    if read_to is _NOT_READ:
        read_to = session.execute(select(ReadMark.last_read_id).where(*where)).scalar_one_or_none()
    if read_to is None:
        session.add(ReadMark(user_id=user_id, report_id=report_id, channel=channel, last_read_id=last_id))
    elif last_id > read_to:
        # Guarded, so that a page read in another tab meanwhile never moves it back.
        session.execute(update(ReadMark).where(*where, ReadMark.last_read_id < last_id).values(last_read_id=last_id))
    else:
        return False
    session.flush()
    if settle and (role is None or role in unread.kept_for()):
        unread.settle(session, user_id, report_id)
    return True


def mark_read(session: Session, user_id: int, report: Report, channel: str, messages: list[Message], *,
              role: str | None = None) -> None:
    if messages:
        _mark(session, user_id, report.id, channel, messages[-1].id, role=role)


def unread_column(user_id, channels, report_id):
    """The number of messages in ``channels`` of the case ``report_id`` (a column: a correlated
    subquery) that ``user_id`` has not read, as one more column of a list's own statement.
    Only messages at a level the reader may read count (``vis_levels``, bound with the list's
    visibility): a note above their level is never announced by a badge. A message's
    compartments are the case's when it was written, which the listed case's include."""
    mark = ReadMark.__table__.alias("m")
    return (select(func.count())
            .select_from(Message)
            .outerjoin(mark, and_(mark.c.user_id == user_id, mark.c.report_id == Message.report_id,
                                  mark.c.channel == Message.channel))
            .where(Message.report_id == report_id, Message.channel.in_(channels), Message.author_id != user_id,
                   Message.classification.in_(bindparam("vis_levels", expanding=True)),
                   Message.id > func.coalesce(mark.c.last_read_id, 0))
            .correlate_except(Message, mark).scalar_subquery())  # user_id, channels: values or bind parameters
