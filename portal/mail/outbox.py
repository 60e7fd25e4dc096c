"""Mail goes through the outbox: written in the action's transaction, delivered by
``portal mail send`` (or the jobs runner) when SMTP is configured, readable otherwise."""
from __future__ import annotations

import smtplib
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
