"""Mail goes through the outbox: written in the action's transaction, delivered by
``portal mail send`` (or the jobs runner) when SMTP is configured, readable otherwise.

Whoever reads the outbox (the admin's page, ``portal mail list``) sees that a mail was written
and to whom, but not a link that acts for its recipient: an invitation link sets the password
of a new account, so only the invitee's own mail holds it in full. ``PORTAL_SHOW_MAIL_LINKS``
shows it, in development only (``Settings.mail_links_shown``)."""
from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.db import utcnow
from portal.mail.models import OutboxMessage


def queue(session: Session, to_addr: str, subject: str, body: str) -> OutboxMessage:
    msg = OutboxMessage(to_addr=to_addr, subject=subject[:300], body=body)
    session.add(msg)
    session.flush()
    return msg


def pending(session: Session, limit: int = 100) -> list[OutboxMessage]:
    return list(session.execute(
        select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id).limit(limit)
    ).scalars())


def recent(session: Session, limit: int = 50, offset: int = 0) -> list[OutboxMessage]:
    return list(session.execute(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit).offset(offset)).scalars())


# Every URL path under /invitation/: what follows is the token (portal.orgs, route orgs.accept).
_SECRET_LINK = re.compile(r"(/invitation/)[^\s]+")
HIDDEN = "••••••••"


def redact(text: str) -> str:
    """``text`` with every invitation token replaced by ``HIDDEN``."""
    return _SECRET_LINK.sub(lambda m: m.group(1) + HIDDEN, text)


@dataclass(frozen=True)
class Shown:
    """A mail as the outbox's readers see it."""
    id: int
    to_addr: str
    subject: str
    body: str
    created_at: datetime
    sent_at: datetime | None


def for_readers(msgs: list[OutboxMessage], *, show_links: bool = False) -> list[Shown]:
    """What the outbox's readers may see of ``msgs``: invitation links redacted unless
    ``show_links`` (pass ``Settings.mail_links_shown``, never the raw switch)."""
    shown = (lambda text: text) if show_links else redact
    return [Shown(m.id, m.to_addr, shown(m.subject), shown(m.body), m.created_at, m.sent_at) for m in msgs]


def send_pending(session: Session, settings: Settings) -> tuple[int, int]:
    """Deliver queued mail over SMTP. Returns (sent, failed). Without SMTP, nothing is sent."""
    if not settings.smtp_configured:
        return 0, 0
    sent = failed = 0
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        for msg in pending(session):
            em = EmailMessage()
            em["From"] = settings.mail_from
            em["To"] = msg.to_addr
            em["Subject"] = msg.subject
            em.set_content(msg.body)
            msg.attempts += 1
            try:
                smtp.send_message(em)
                msg.sent_at = utcnow()
                sent += 1
            except smtplib.SMTPException as exc:
                msg.last_error = str(exc)[:500]
                failed += 1
            session.commit()
    return sent, failed
