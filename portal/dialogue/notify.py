"""Notifications: in the portal and by e-mail through the outbox. They say only that
something happened on which case, with a link; never the content."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.access.levels import Role
from portal.auth.models import User
from portal.dialogue.models import Notification
from portal.mail import outbox

SUBJECTS = {
    "message": ("新しいメッセージがあります", "There is a new message"),
    "request": ("回答を求める連絡があります", "METI has asked for information"),
    "answer": ("事業者から回答がありました", "The company has answered"),
    "returned": ("補正依頼があります", "The report was returned for correction"),
    "closed": ("事前報告の確認が完了しました", "The review of the report is complete"),
    "assigned": ("案件が割り当てられました", "A case was assigned to you"),
    "reminder": ("回答期限が近づいています", "A response is due soon"),
    "overdue": ("審査期間の目安を過ぎた案件があります", "A case is past its review target"),
    "submitted": ("事前報告が再提出されました", "A report was resubmitted"),
    "inform": ("インフォーム通知が発出されました", "An inform has been issued"),
    "inform_revoked": ("インフォーム通知が取り消されました", "An inform has been revoked"),
}


def company_recipients(session: Session, org_id: int) -> list[User]:
    return list(session.execute(select(User).where(
        User.organisation_id == org_id, User.active.is_(True),
        User.role.in_([Role.FILER.value, Role.ORG_ADMIN.value]))).scalars())


def notify(session: Session, users, report, kind: str, base_url: str) -> int:
    ja, en = SUBJECTS[kind]
    ref = report.reference or f"#{report.id}"
    link = f"{base_url.rstrip('/')}/reports/{report.id}"
    n = 0
    for user in {u.id: u for u in users if u is not None}.values():
        session.add(Notification(user_id=user.id, report_id=report.id, kind=kind))
        outbox.queue(
            session, user.email, f"【技術移転事前報告ポータル】{ref}：{ja} / {en}",
            f"{ref} について、{ja}。内容はポータルでご確認ください。\n{link}\n\n"
            f"{en} on {ref}. Sign in to the portal to read it.\n{link}\n\n"
            "このメールには内容を記載していません。/ This e-mail never contains the content.\n",
        )
        n += 1
    session.flush()
    return n


def unread_count(session: Session, user_id: int) -> int:
    return session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))).scalar_one()


def unread_column(user_id):
    """The same count as a correlated subquery on ``user_id`` (a column of the outer statement):
    what ``portal.auth.principal`` reads with the session on every request."""
    return (select(func.count()).select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .correlate_except(Notification).scalar_subquery())
