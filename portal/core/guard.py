"""The web layer's bridge to the policy: every view is either ``@public`` or ``@guarded``.

A denial is recorded in the audit trail (in its own small transaction, since the request
does nothing else) and answered 404 when the object must stay unknown, 403 otherwise.
"""
from __future__ import annotations

from functools import wraps
from typing import Callable

from flask import abort, current_app, g, request
from flask_login import current_user

from portal import db
from portal.access.policy import Action, Decision, decide
from portal.access.subject import subject_for
from portal.audit.trail import record
from portal.auth import principal
from portal.core.timeutil import today_jst


def public(view: Callable) -> Callable:
    view._access = "public"  # type: ignore[attr-defined]
    return view


def current_subject():
    if not current_user.is_authenticated:
        return None
    if "subject" not in g:
        user = current_user._get_current_object()
        p = principal.of(user)
        g.subject = subject_for(db.session(), user, today_jst(), p.grant if p is not None else False)
    return g.subject


def can(action: Action, obj: object = None) -> bool:
    """For templates and menus only: never records, never aborts."""
    return decide(current_subject(), action, obj, today=today_jst()).allowed


def check(action: Action, obj: object = None) -> Decision:
    return decide(current_subject(), action, obj, today=today_jst())


def audit(action: str, **kw) -> None:
    """Record an event for the current request's user and address (in the open transaction)."""
    actor = kw.pop("actor", None)
    if current_user.is_authenticated:
        actor = current_user._get_current_object()
    record(db.session(), action, actor=actor, source_ip=request.remote_addr, **kw)


def authorize(action: Action, obj: object = None, *, target_type: str | None = None,
              target_id: object = None, case_ref: str | None = None) -> None:
    decision = check(action, obj)
    if decision.allowed:
        return
    s = db.session()
    s.rollback()
    audit("access.denied", outcome="denied", reason=decision.reason,
          target_type=target_type or (type(obj).__name__ if obj is not None else None),
          target_id=target_id, case_ref=case_ref,
          details={"permission": str(action), "path": request.path, "method": request.method})
    s.commit()
    abort(404 if decision.conceal else 403)


def authorize_object(action: Action, obj: object) -> None:
    """``authorize`` for a model object: it offers the policy its labels (``policy_target``)
    and the audit trail its identity (``audit_target``)."""
    target = obj.policy_target() if hasattr(obj, "policy_target") else obj
    ident = getattr(obj, "audit_target", None)
    authorize(action, target, target_type=ident[0] if ident else type(obj).__name__,
              target_id=ident[1] if ident else None)


def guarded(action: Action, load: Callable[..., object] | None = None) -> Callable:
    """Sign-in required, then the policy decides ``action`` on the object ``load`` returns
    (given the view's URL arguments; None means 404). The view receives the object as ``obj``."""

    def deco(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(**kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if load is None:
                authorize(action)
                return view(**kwargs)
            obj = load(**kwargs)
            if obj is None:
                # A forged or stale id: recorded like any other denial.
                s = db.session()
                s.rollback()
                audit("access.denied", outcome="denied", reason="not_found",
                      target_id=next(iter(kwargs.values()), None), details={"permission": str(action), "path": request.path, "method": request.method})
                s.commit()
                abort(404)
            authorize_object(action, obj)
            return view(obj=obj)

        wrapper._access = ("policy", action)  # type: ignore[attr-defined]
        return wrapper

    return deco
