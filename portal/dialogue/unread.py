"""Which cases hold messages a case worker has not read, kept as messages are written and read.

The exact rule is ``services.unread_column``'s: a message is unread for a person when someone
else wrote it, in a channel their role reads, after their read mark in that channel, at a level
their clearance covers, in a case they may see. Counting that afresh over 1,000,000 messages
took half a second per queue page; this keeps one row per (case worker, case) instead:

- a new message upserts the row of every case worker whose role reads its channel (the
  policy's ``roles_allowed``), but its author;
- a reader's mark moving forward settles their row again from the case's own messages;
- the levels and the case's visibility stay decisions at query time (``condition``): a
  clearance that changes or lapses changes what counts on the next request, with no rewrite.

Rows are kept for the roles that work the queue (``Action.REVIEW_QUEUE``); a person who takes
such a role, or is created with one, gets theirs built (``rebuild_user``).

Concurrency: a writer and a reader of the same case may overlap. Settling deletes or lowers a
row only up to the newest message it saw (``last_id``), so a message committed meanwhile keeps
its case unread: a case may be shown unread once too often, never missed.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, case, func, literal, or_, select, text, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.access.levels import Level
from portal.access.policy import Action, roles_allowed
from portal.auth.models import User
from portal.dialogue.models import EXTERNAL, INTERNAL, Message, ReadMark, UnreadCase, UnreadTally
from portal.orgs.models import Organisation
from portal.reports import states as S
from portal.reports.models import Report

_READ_ACTIONS = {EXTERNAL: Action.MESSAGE_READ, INTERNAL: Action.INTERNAL_NOTE_READ}


def kept_for() -> frozenset[str]:
    """The roles whose unread cases are kept: those that work the review queue."""
    return frozenset(r.value for r in roles_allowed(Action.REVIEW_QUEUE))


def readers(channel: str) -> list[str]:
    """Of those roles, the ones that read ``channel``."""
    return sorted(kept_for() & {r.value for r in roles_allowed(_READ_ACTIONS[channel])})


def rank_of(level: str) -> int:
    parsed = Level.parse(level)
    # Anything but a registered level counts as the highest: only the most cleared see it.
    return parsed.rank if parsed is not None else max(lvl.rank for lvl in Level)


def _rank_column(column):
    return case({lvl.value: lvl.rank for lvl in Level}, value=column, else_=max(lvl.rank for lvl in Level))


def _reads_channel(role_column, channel_column):
    return or_(*(and_(channel_column == ch, role_column.in_(readers(ch))) for ch in _READ_ACTIONS if readers(ch)))


def _mine():
    return and_(UnreadCase.user_id == bindparam("unread_user"), UnreadCase.lowest_rank <= bindparam("unread_rank"))


def condition(report_id_column):
    """The SQL condition "this case holds a message the reader has not read": binds
    ``unread_user`` and ``unread_rank`` (``rank_param``)."""
    return report_id_column.in_(select(UnreadCase.report_id).where(_mine()))


def visible_rows():
    """The reader's rows of cases they may see, on the copied labels: exactly
    ``reports.visible_to_government()`` (the same bound values) with ``condition``, without
    reading ``reports``."""
    return and_(_mine(), UnreadCase.status != S.DRAFT,
                UnreadCase.classification.in_(bindparam("vis_levels", expanding=True)),
                UnreadCase.technology_id.in_(bindparam("vis_techs", expanding=True)),
                UnreadCase.report_id.not_in(bindparam("vis_hidden", expanding=True)))


def total(*, by_status: bool):
    """The number of rows ``visible_rows`` (and ``f_status`` with ``by_status``) selects, from
    the tallies: a sum over a few rows, less the reader's rows among the multi-compartment
    cases they may not see (``vis_hidden``, few), which the tallies count with the rest."""
    tally = [UnreadTally.user_id == bindparam("unread_user"), UnreadTally.lowest_rank <= bindparam("unread_rank"),
             UnreadTally.status != S.DRAFT, UnreadTally.classification.in_(bindparam("vis_levels", expanding=True)),
             UnreadTally.technology_id.in_(bindparam("vis_techs", expanding=True))]
    hidden = [_mine(), UnreadCase.report_id.in_(bindparam("vis_hidden", expanding=True))]
    if by_status:
        tally.append(UnreadTally.status == bindparam("f_status"))
        hidden.append(UnreadCase.status == bindparam("f_status"))
    not_seen = select(func.count()).select_from(UnreadCase).where(*hidden).scalar_subquery()
    return select(func.coalesce(func.sum(UnreadTally.n), 0) - not_seen).where(*tally)


def rank_param(readable_levels: list[str]) -> int:
    """The highest rank a reader may read, from the levels the list binds (always the lowest
    levels up to their clearance); -1 when they may read none."""
    return max((rank_of(lvl) for lvl in readable_levels), default=-1)


# A row's columns, in the order every SELECT that fills them gives them.
COLUMNS = ["user_id", "report_id", "lowest_rank", "last_id", "status", "classification", "technology_id",
           "submitted_at"]
_CASE_LABELS = (Report.status, Report.classification, Report.technology_id, Report.submitted_at)


def _upsert(session: Session, rows):
    """Insert rows (a SELECT of ``COLUMNS``), or fold them into the rows already there: the
    lower rank, the newer message."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(UnreadCase)
    stmt = ins.from_select(COLUMNS, rows)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "report_id"],
        set_={"lowest_rank": case((ex.lowest_rank < UnreadCase.lowest_rank, ex.lowest_rank),
                                  else_=UnreadCase.lowest_rank),
              "last_id": case((ex.last_id > UnreadCase.last_id, ex.last_id), else_=UnreadCase.last_id)})
    session.execute(stmt)


def message_written(session: Session, msg: Message) -> None:
    """The message is unread for every case worker who reads its channel, but its author."""
    roles = readers(msg.channel)
    if not roles:
        return
    rows = (select(User.id, Report.id, literal(rank_of(msg.classification)), literal(msg.id), *_CASE_LABELS)
            .select_from(User)
            .join(Organisation, Organisation.id == User.organisation_id)
            .join(Report, Report.id == msg.report_id)
            .where(Organisation.is_government.is_(True), User.role.in_(roles), User.id != msg.author_id)
            # One order for every writer: the rows (and the tally rows their triggers move) are
            # locked in it, so two messages posted at once cannot deadlock on them.
            .order_by(User.id))
    _upsert(session, rows)


def settle(session: Session, user_id: int, report_id: int) -> None:
    """After ``user_id``'s read mark in the case moved: their row again, from the case's messages."""
    mark = ReadMark.__table__.alias("rm")
    newest = select(func.max(Message.id)).where(Message.report_id == report_id).scalar_subquery()
    user = User.__table__.alias("u")
    found = session.execute(
        select(func.min(_rank_column(Message.classification)), func.max(Message.id), newest)
        .select_from(Message)
        .join(user, user.c.id == user_id)
        .outerjoin(mark, and_(mark.c.user_id == user_id, mark.c.report_id == report_id,
                              mark.c.channel == Message.channel))
        .where(Message.report_id == report_id, Message.author_id != user_id,
               user.c.role.in_(kept_for()), _reads_channel(user.c.role, Message.channel),
               Message.id > func.coalesce(mark.c.last_read_id, 0))).one()
    lowest, last, seen = found
    if seen is None:
        return  # no message in the case at all
    mine = and_(UnreadCase.user_id == user_id, UnreadCase.report_id == report_id)
    if lowest is None:
        # Only what this read saw: a message committed since keeps the row.
        session.execute(UnreadCase.__table__.delete().where(mine, UnreadCase.last_id <= seen))
        return
    updated = session.execute(
        UnreadCase.__table__.update().where(mine)
        .values(lowest_rank=case((UnreadCase.last_id <= seen, lowest),
                                 else_=case((UnreadCase.lowest_rank < lowest, UnreadCase.lowest_rank), else_=lowest)),
                last_id=case((UnreadCase.last_id > last, UnreadCase.last_id), else_=last))).rowcount
    if not updated:
        _upsert(session, select(literal(user_id), Report.id, literal(lowest), literal(last), *_CASE_LABELS)
                .where(Report.id == report_id))


def _rebuild_select(user_filter):
    mark = ReadMark.__table__.alias("rm")
    return (select(User.id, Report.id, func.min(_rank_column(Message.classification)), func.max(Message.id),
                   *_CASE_LABELS)
            .select_from(User)
            .join(Organisation, and_(Organisation.id == User.organisation_id, Organisation.is_government.is_(True)))
            .join(Message, and_(Message.author_id != User.id, _reads_channel(User.role, Message.channel)))
            .join(Report, Report.id == Message.report_id)
            .outerjoin(mark, and_(mark.c.user_id == User.id, mark.c.report_id == Message.report_id,
                                  mark.c.channel == Message.channel))
            .where(user_filter, User.role.in_(kept_for()), Message.id > func.coalesce(mark.c.last_read_id, 0))
            .group_by(User.id, Report.id, *_CASE_LABELS))


def rebuild_user(session: Session, user_id: int) -> None:
    """A person's rows from scratch: when they are created with, or take, a role whose rows are kept
    (or lose one: then none are left)."""
    session.execute(UnreadCase.__table__.delete().where(UnreadCase.user_id == user_id))
    session.execute(UnreadCase.__table__.insert().from_select(COLUMNS, _rebuild_select(User.id == user_id)))


def rebuild_all(conn) -> int:
    """Every row from the messages and read marks (after a bulk load, ``portal db recount``);
    returns the number of rows. The tallies are emptied too (a load with triggers off leaves
    them wrong) and built again by the rows' insert triggers."""
    conn.execute(UnreadCase.__table__.delete())
    conn.execute(UnreadTally.__table__.delete())
    conn.execute(UnreadCase.__table__.insert().from_select(COLUMNS, _rebuild_select(true())))
    return int(conn.execute(text("SELECT count(*) FROM unread_cases")).scalar_one())
