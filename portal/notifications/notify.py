"""Notifications: in the portal and by e-mail through the outbox. They say only that
something happened on which case, with a link; never the content."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.access.levels import Role
from portal.access.policy import Action, decide
from portal.core.timeutil import today_jst
from portal.auth.models import User
from portal.db import utcnow
from portal.notifications.models import Notification
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
    "approval": ("決裁待ちのインフォーム案があります", "An inform draft awaits your approval"),
}


def company_recipients(session: Session, org_id: int) -> list[User]:
    return list(session.execute(select(User).where(
        User.organisation_id == org_id, User.active.is_(True),
        User.role.in_([Role.FILER.value, Role.ORG_ADMIN.value]))).scalars())


def may_know(session: Session, user: User, action: Action, about, today) -> bool:
    """A notice names a case: only someone the policy lets read the thing it is about gets one
    (a reviewer who lost the compartment, a company without the facility clearance a
    confidential case needs, a reader below a note's level: nothing)."""
    from portal.access.subject import subject_for

    return decide(subject_for(session, user, today), action, about, today=today).allowed


def notify(session: Session, users, report, kind: str, base_url: str, *, action: Action = Action.REPORT_VIEW,
           about=None) -> int:
    ja, en = SUBJECTS[kind]
    ref = report.reference or f"#{report.id}"
    link = f"{base_url.rstrip('/')}/reports/{report.id}"
    today = today_jst()
    n = 0
    for user in {u.id: u for u in users if u is not None}.values():
        if not may_know(session, user, action, about if about is not None else report, today):
            continue
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


def read_all(session: Session, user_id: int, limit: int = 100) -> list[Notification]:
    """The person's newest notices; opening the list marks them all read."""
    rows = list(session.execute(select(Notification).where(Notification.user_id == user_id)
                                .order_by(Notification.id.desc()).limit(limit)).scalars())
    session.execute(update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
                    .values(read_at=utcnow()))
    return rows


def unread_count(session: Session, user_id: int) -> int:
    return session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))).scalar_one()


def unread_column(user_id):
    """The same count as a correlated subquery on ``user_id`` (a column of the outer statement):
    what ``portal.auth.principal`` reads with the session on every request."""
    return (select(func.count()).select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .correlate_except(Notification).scalar_subquery())
