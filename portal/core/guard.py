"""The one request path (DESIGN §3 rule 8; CONVENTIONS 3): load → decide → act → commit once.

Every view is either ``@public`` or ``@guarded``. A guarded route names the action it performs
and how to load the object it touches from the URL; the wrapper

1. loads the object (a missing or out-of-range id is a refusal like any other),
2. asks ``decide()`` with the object's *own* labels (``policy_target()``), before any byte of
   the request body is read (CSRF and the form are checked only after the decision; a
   streamed upload is parsed by the view itself),
3. refuses with 404 (conceal) or 403 and an ``access.denied`` event,
4. runs the view, which calls a service and renders,
5. commits once: the action and its audit events in one transaction. A refusal or a failure
   raised by the service rolls everything back and records only the refusal or failure.

Views never commit, roll back or build refusals themselves; ``failed()`` is for a view that
renders its own error page (a form with the errors beside the fields).

A streamed body (an upload: a quarter of an hour for 1 GiB over a slow link) is read with no
transaction open: after the decision the wrapper ends the transaction, which hands the database
connection back to the pool (and, on SQLite, the write lock every request needs). Once the body
is in, ``decide_again()`` makes the same decision on fresh rows (the session may have been
revoked, the clearance withdrawn, the report submitted meanwhile) before anything is written;
the action and its events still commit once.
"""
from __future__ import annotations

import inspect
import logging
from functools import wraps
from typing import Callable, Iterable, Iterator, Mapping

from flask import abort, current_app, flash, g, redirect, request, stream_with_context, url_for
from flask import session as cookie_session
from flask_login import current_user

from portal import db
from portal.access.policy import Action, Decision, decide
from portal.access.subject import subject_for
from portal.audit.trail import record
from portal.auth import principal
from portal.auth.sessions import digest
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Object ids are 32-bit on PostgreSQL: a larger one names nothing (and must not reach SQL).
MAX_ID = 2**31 - 1


# ---------------------------------------------------------------- who is asking

def current_subject():
    if not current_user.is_authenticated:
        return None
    if "subject" not in g:
        user = current_user._get_current_object()
        p = principal.of(user)
        g.subject = subject_for(db.session(), user, today_jst(), p.grant if p is not None else False)
    return g.subject


def check(action: Action, obj: object = None) -> Decision:
    """The policy's answer for the current user (services and views deciding what to show)."""
    target = obj.policy_target() if hasattr(obj, "policy_target") else obj
    decision = decide(current_subject(), action, target, today=today_jst())
    if decision.allowed and hasattr(obj, "policy_parent"):
        decision = decide(current_subject(), Action.REPORT_VIEW, obj.policy_parent(), today=today_jst())
    return decision


def can(action: Action, obj: object = None) -> bool:
    """For menus and buttons: whether to offer an action (the route decides again). Never for
    whether content is shown: services leave out of the page what the reader may not see."""
    return check(action, obj).allowed


def audit(action: str, **kw) -> None:
    """Record an event for the current request's user and address (in the open transaction);
    a request authenticated by an API token names the token in every event it records."""
    actor = kw.pop("actor", None)
    if current_user.is_authenticated:
        actor = current_user._get_current_object()
    token_id = g.get("api_token_id")
    if token_id is not None:
        kw["details"] = {**(kw.get("details") or {}), "api_token_id": token_id}
    record(db.session(), action, actor=actor, source_ip=request.remote_addr, **kw)


# ---------------------------------------------------------------- loading

def by_id(model, ident, *, limit: int = MAX_ID) -> object | None:
    """``session.get`` for an id from the URL; ids outside the column's range name nothing."""
    if not isinstance(ident, int) or not 0 < ident <= limit:
        return None
    return db.session().get(model, ident)


def _identity(obj: object) -> dict:
    if obj is None:
        return {}
    ident = getattr(obj, "audit_target", None)
    case = getattr(obj, "reference", None) or getattr(getattr(obj, "report", None), "reference", None)
    return {"target_type": ident[0] if ident else type(obj).__name__, "target_id": ident[1] if ident else None,
            "case_ref": case}


# ---------------------------------------------------------------- refusals and failures

def refuse(action: Action | str, reason: str, *, conceal: bool, obj: object = None, target_id: object = None):
    """Roll back whatever was done, record the denial in its own transaction, answer 404/403."""
    s = db.session()
    s.rollback()
    g.pop("after_commit", None)
    ident = _identity(obj)
    if target_id is not None and "target_id" not in ident:
        ident["target_id"] = target_id
    audit("access.denied", outcome="denied", reason=reason, **ident,
          details={"permission": str(action), "path": request.path[:200], "method": request.method})
    s.commit()
    abort(404 if conceal else 403)


def failed(e: ServiceError, event: str, obj: object = None, **event_fields) -> None:
    """Undo the service's work and record the failure; the request path commits the record.
    For a view that renders its own error page instead of redirecting back."""
    db.session().rollback()
    g.pop("after_commit", None)
    audit(event, outcome="failure", reason=e.reason, **{**_identity(obj), **event_fields})


def invalid_form(event: str, form, **event_fields) -> None:
    """A form refused before any service saw it (empty reason, malformed date…): bad input is
    recorded like any other failure, and nothing is changed."""
    discard()
    audit(event, outcome="failure", reason="invalid_input", details={"fields": sorted(form.errors)}, **event_fields)


def discard() -> None:
    """Nothing of this request is kept (a form with errors after a service looked at it)."""
    db.session().rollback()


# ---------------------------------------------------------------- the wrappers

def _check_form_body() -> None:
    """After the decision: the CSRF token and a NUL in any field (PostgreSQL refuses NUL in text)."""
    from portal.core.security import csrf

    csrf.protect()
    if has_nul(request.form):
        abort(400)


def has_nul(form) -> bool:
    """A NUL in any field, whatever the body's encoding (urlencoded or multipart)."""
    return any("\x00" in v for v in form.values())


def _act(view: Callable, args: tuple, kwargs: dict, *, action, obj, event: str | None, back, answer=None):
    # The request's ORM session is opened by whatever first needs it, not here: a route that
    # reads nothing (/livez) opens and closes none.
    try:
        response = view(*args, **kwargs)
    except Refused as e:
        refuse(action, e.reason, conceal=e.conceal, obj=obj)
    except ServiceError as e:
        s = db.session()
        s.rollback()
        g.pop("after_commit", None)
        audit(event or f"{request.endpoint}", outcome="failure", reason=e.reason, **_identity(obj))
        s.commit()
        if answer is not None:
            return answer(e)
        flash(e.message, "error")
        return redirect(back(obj) if back is not None else _default_back(obj))
    except BaseException:
        opened = db.opened_session()
        if opened is not None:
            opened.rollback()
        g.pop("after_commit", None)
        raise
    token = g.get("api_token")
    if token is not None:
        # Every use of an API token, in the transaction of what it did (a refusal or failure
        # records its own event, which names the token too).
        audit("api.token.use", target_type="api_token", target_id=token.id, org_id=token.organisation_id,
              details={"endpoint": request.endpoint, "method": request.method})
    s = db.opened_session()
    if s is not None and s.in_transaction():  # a page that read nothing (/livez) has nothing to commit
        s.commit()
    for fn in g.pop("after_commit", ()):
        fn()
    return response


def after_this_request_commits(fn: Callable[[], None]) -> None:
    """Run ``fn`` once the request's transaction has committed (removing a blob whose row is
    gone); never when it rolls back."""
    g.setdefault("after_commit", []).append(fn)


def _default_back(obj) -> str:
    report_id = getattr(obj, "report_id", None) or (getattr(obj, "id", None) if type(obj).__name__ == "Report" else None)
    if report_id:
        return url_for("reports.show", report_id=report_id)
    return url_for("core.home")


def public(view: Callable | None = None, *, body: str = "form") -> Callable:
    """Open to anyone (sign-in, invitations, health). CSRF on every form still holds, and the
    request still commits once."""

    def deco(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            if request.method not in SAFE_METHODS and body == "form":
                _check_form_body()
            return _act(view, args, kwargs, action="public", obj=None, event=None, back=None)

        wrapper._access = "public"  # type: ignore[attr-defined]
        return wrapper

    return deco(view) if view is not None else deco


def guarded(action: Action | Mapping[str, Action], load: Callable[..., object] | None = None, *,
            target: Callable[[object], object] | None = None, event: str | None = None,
            back: Callable[[object], str] | None = None, body: str = "form", auth: str = "session",
            answer: Callable[[ServiceError], object] | None = None) -> Callable:
    """Sign-in required, then the policy decides the route's action on the object ``load``
    returns from the URL arguments (None: 404, recorded).

    ``action``: one Action, or one per HTTP method. ``target(obj)``: what the policy decides
    on when it is not ``obj.policy_target()`` (a channel of a case, a report's working copy).
    ``event``: the audit action recorded when the service refuses the request as asked.
    ``back(obj)``: where such a refusal returns, its message flashed. ``body="stream"``: the
    view parses the streamed body and checks its CSRF token itself (uploads); ``body="json"``: an
    API body, parsed by the view.

    ``auth="bearer"`` (the API): the request is authenticated by an API token in the
    Authorization header instead of the session cookie (which is never read: portal.auth.sessions),
    the token's scope must cover the action, and no CSRF token is asked for (no browser sends
    the header by itself). ``answer(e)``: the response to a ServiceError instead of a flashed
    message and a redirect to ``back``."""
    if auth not in ("session", "bearer"):
        raise ValueError(auth)
    actions = dict(action) if isinstance(action, Mapping) else None

    def deco(view: Callable) -> Callable:
        load_params = set(inspect.signature(load).parameters) if load is not None else set()
        takes_all = load is not None and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(load).parameters.values())

        @wraps(view)
        def wrapper(**kwargs):
            act = actions.get(request.method, actions.get("GET")) if actions is not None else action
            if auth == "bearer":
                _authenticate_bearer(act)
            elif not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            obj = None
            if load is not None:
                obj = load(**(kwargs if takes_all else {k: v for k, v in kwargs.items() if k in load_params}))
                if obj is None:
                    # A forged, stale or out-of-range id: recorded like any other denial.
                    refuse(act, "not_found", conceal=True, target_id=str(next(iter(kwargs.values()), ""))[:40])
                subject_of = target(obj) if target is not None else (
                    obj.policy_target() if hasattr(obj, "policy_target") else obj)
            else:
                subject_of = None
            decision = _decision(act, obj, subject_of)
            if not decision.allowed:
                refuse(act, decision.reason, conceal=decision.conceal, obj=obj)
            if request.method not in SAFE_METHODS and body == "form":
                _check_form_body()
            if request.method not in SAFE_METHODS and body == "stream":
                g.decide_again = lambda: _decide_again(act, load, kwargs, target, auth)
                _release_connection()
            if load is None:
                return _act(view, (), kwargs, action=act, obj=None, event=event, back=back, answer=answer)
            return _act(view, (), {"obj": obj}, action=act, obj=obj, event=event, back=back, answer=answer)

        wrapper._access = ("policy", next(iter(actions.values())) if actions else action)  # type: ignore[attr-defined]
        wrapper._actions = actions or {"*": action}  # type: ignore[attr-defined]
        wrapper._auth = auth  # type: ignore[attr-defined]
        return wrapper

    return deco


def _decision(act, obj, subject_of) -> Decision:
    decision = decide(current_subject(), act, subject_of, today=today_jst())
    if decision.allowed and hasattr(obj, "policy_parent"):
        # Rule 7: a sub-object is decided on its own labels *and* its own parent: what
        # belongs to a case is reached only by someone who may read the case.
        decision = decide(current_subject(), Action.REPORT_VIEW, obj.policy_parent(), today=today_jst())
    return decision


def _authenticate_bearer(act) -> None:
    """The API's sign-in: the bearer token names the user the policy then decides on. A token
    that is missing, unknown, expired or revoked answers 401, one used from an address or for
    an action it does not cover 403; each refusal is recorded like any other denial, with the
    token's id when it is known."""
    from portal.auth import tokens

    verdict = tokens.authenticate(db.session(), request.headers.get("Authorization"), request.remote_addr, act)
    if verdict.token is not None:
        g.api_token_id = verdict.token.id
    if verdict.reason is not None:
        g._login_user = current_app.login_manager.anonymous_user()
        s = db.session()
        s.rollback()
        audit("access.denied", outcome="denied", reason=verdict.reason, target_type="api_token",
              target_id=verdict.token.id if verdict.token is not None else None,
              org_id=verdict.token.organisation_id if verdict.token is not None else None,
              details={"permission": str(act), "path": request.path[:200], "method": request.method})
        s.commit()
        g.bearer_refusal = verdict.reason
        abort(verdict.status)
    token = verdict.token
    # Flask-Login's current user for this request, without any session: the guard, the
    # services and the audit trail see the token's user as if signed in.
    g._login_user = token.user
    g.pop("principal", None)
    g.pop("subject", None)
    g.api_token = token


def authenticated_by_token() -> bool:
    """Whether this request was authenticated by an API token (no CSRF token to check)."""
    return g.get("api_token") is not None


# ---------------------------------------------------------------- streamed bodies

def _release_connection() -> None:
    """Nothing has been written yet (a refusal commits its own record): ending the transaction
    returns the connection to the pool while the body streams in. The objects loaded so far
    are expired and read afresh when next used."""
    db.session().rollback()


def decide_again() -> None:
    """After a streamed body, before acting on it: the route's decision once more, on the
    session, the user, the grant and the object as they are now. Refuses like the wrapper."""
    again = g.pop("decide_again", None)
    if again is not None:
        again()


def _decide_again(act, load, kwargs: dict, target, auth: str = "session") -> None:
    s = db.session()
    user = current_user._get_current_object()
    if auth == "bearer":
        # The token revoked or expired, or its user disabled, while the body arrived.
        _authenticate_bearer(act)
    else:
        token = getattr(cookie_session, "token", None)
        loaded = principal.load(s.connection(), digest(token)) if token else None
        if loaded is None or loaded[1].user_id != user.id:
            # Signed out, revoked (a password or role change) or disabled while the body arrived.
            refuse(act, "session_ended", conceal=False)
        g.principal = loaded[1]
    g.pop("subject", None)
    obj = None
    subject_of = None
    if load is not None:
        params = inspect.signature(load).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        obj = load(**(kwargs if takes_all else {k: v for k, v in kwargs.items() if k in params}))
        if obj is None:
            refuse(act, "not_found", conceal=True, target_id=str(next(iter(kwargs.values()), ""))[:40])
        subject_of = target(obj) if target is not None else (
            obj.policy_target() if hasattr(obj, "policy_target") else obj)
    decision = _decision(act, obj, subject_of)
    if not decision.allowed:
        refuse(act, decision.reason, conceal=decision.conceal, obj=obj)


# ---------------------------------------------------------------- streamed reads

def audited_stream(chunks: Iterable[bytes], event: str, *, obj: object, integrity_errors: tuple = (),
                   **details) -> Iterator[bytes]:
    """The body of a download. Its event is recorded when the stream ends, in its own
    transaction: success only when the last byte went out; a segment that failed to
    authenticate, a missing blob or a client that went away is recorded as a failure."""
    actor = current_user._get_current_object() if current_user.is_authenticated else None
    ip = request.remote_addr
    ident = _identity(obj)

    def body():
        outcome, reason = "failure", "aborted"
        try:
            yield from chunks
            outcome, reason = "success", None
        except integrity_errors:
            reason = "integrity"
            log.error("%s %s failed to authenticate; download aborted", ident.get("target_type"), ident.get("target_id"))
            raise  # the server drops the connection: the client sees a truncated download
        except GeneratorExit:
            reason = "client_gone"
            raise
        except Exception:
            reason = "error"
            raise
        finally:
            try:
                s = db.session()
                s.rollback()
                record(s, event, actor=actor, source_ip=ip, outcome=outcome, reason=reason, **ident,
                       details=details or None)
                s.commit()
            except Exception:
                log.exception("could not record the end of a download")

    return stream_with_context(body())
