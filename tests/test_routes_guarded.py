"""Every registered route is either declared public or guarded by the policy (issue 3 item 3),
and no guarded page answers an anonymous visitor with anything but a redirect to sign-in."""
from __future__ import annotations

from urllib.parse import urlsplit

from portal.access.policy import RULES, Action

# Routes that may be public, and nothing else: sign-in, language, health, invitation links,
# and /metrics (it decides itself: loopback or a bearer token, else 404; tests/test_observability.py).
# A new public route is a deliberate decision: add it here with the reason.
EXPECTED_PUBLIC = {"core.home", "core.language", "core.healthz", "core.livez", "auth.login",
                   "auth.second_factor", "auth.enrol", "auth.logout", "orgs.accept", "observability.metrics",
                   "core.favicon",  # the browser's icon, as public as the stylesheet
                   "informs.ca_certificate",  # the CA certificate anyone verifies a notice against (issue 16)
                   # Sign-in with GビズID: the way to the provider and back (404 while it is off).
                   "auth.gbiz_start", "auth.gbiz_callback",
                   "api.openapi"}  # the API's OpenAPI document: what the API accepts, no data


def _access(app, endpoint):
    return getattr(app.view_functions[endpoint], "_access", None)


def _bearer(app, endpoint) -> bool:
    """An API route: authenticated by a bearer token, so without one it answers 401 (a problem
    document), never a redirect to a sign-in page a system cannot use."""
    return getattr(app.view_functions[endpoint], "_auth", None) == "bearer"


def _refused_anonymously(app, rule, resp) -> bool:
    if _bearer(app, rule.endpoint):
        return (resp.status_code == 401 and resp.mimetype == "application/problem+json"
                and resp.headers.get("WWW-Authenticate", "").startswith("Bearer"))
    return resp.status_code == 302 and urlsplit(resp.location or "").path == "/auth/login"


def unguarded(app) -> list[str]:
    offenders = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        access = _access(app, rule.endpoint)
        if access == "public":
            continue
        if (isinstance(access, tuple) and len(access) == 2 and access[0] == "policy"
                and isinstance(access[1], Action) and access[1] in RULES):
            continue
        offenders.append(f"{rule.rule} ({rule.endpoint}): {access!r}")
    return offenders


def test_every_route_is_public_or_guarded_by_the_policy(app):
    offenders = unguarded(app)
    assert not offenders, "routes neither @public nor @guarded:\n" + "\n".join(offenders)


def test_the_check_catches_an_unguarded_route():
    """The check above must be able to fail: on a throwaway app, a bare view, a view with a
    made-up marker and one naming an unknown action are reported; public and guarded are not."""
    from flask import Flask

    from portal.core.guard import guarded, public

    a = Flask("probe")
    a.add_url_rule("/open", "open", public(lambda: "x"))
    a.add_url_rule("/guarded", "guarded", guarded(Action.AUDIT_READ)(lambda: "x"))
    a.add_url_rule("/bare", "bare", lambda: "x")

    def fake():
        return "x"

    fake._access = ("policy", "audit.read")  # a string, not an Action: not the policy
    a.add_url_rule("/fake", "fake", fake)
    assert sorted(o.split(" ")[0] for o in unguarded(a)) == ["/bare", "/fake"]


def test_public_routes_are_only_the_expected_ones(app):
    public = {r.endpoint for r in app.url_map.iter_rules()
              if r.endpoint != "static" and _access(app, r.endpoint) == "public"}
    assert public <= EXPECTED_PUBLIC, f"unexpected public routes: {sorted(public - EXPECTED_PUBLIC)}"


def test_there_are_guarded_routes_of_each_console(app):
    guarded = {r.endpoint.split(".")[0] for r in app.url_map.iter_rules()
               if isinstance(_access(app, r.endpoint), tuple)}
    assert {"admin", "access", "audit", "orgs", "auth"} <= guarded


def _anonymous_get_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.arguments or "GET" not in rule.methods:
            continue
        if _access(app, rule.endpoint) == "public":
            continue
        yield rule


def test_anonymous_get_of_every_guarded_page_redirects_to_sign_in(app, client):
    rules = list(_anonymous_get_routes(app))
    assert len(rules) >= 6, [r.rule for r in rules]
    wrong = []
    for rule in rules:
        resp = client.get(rule.rule)
        if not _refused_anonymously(app, rule, resp):
            wrong.append(f"{rule.rule}: {resp.status_code} -> {resp.location}")
    assert not wrong, "\n".join(wrong)


def sample_url(rule, ids: dict[str, int]) -> str:
    """A URL for ``rule`` with real ids where we have them, and plausible values elsewhere."""
    from werkzeug.routing import IntegerConverter

    values = {}
    for arg in rule.arguments:
        if arg in ids:
            values[arg] = ids[arg]
        elif isinstance(rule._converters.get(arg), IntegerConverter):
            values[arg] = 1
        else:
            values[arg] = "x"
    return rule.build(values)[1]


def test_anonymous_get_of_guarded_pages_with_ids_never_succeeds(app, client, factory):
    """Pages with ids in the URL, filled with a real id: still a redirect to sign-in."""
    user = factory.user("reviewer")
    ids = {"user_id": user.id, "org_id": user.organisation_id, "seq": 1}
    wrong = []
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments or "GET" not in rule.methods:
            continue
        if _access(app, rule.endpoint) == "public":
            continue
        url = sample_url(rule, ids)
        resp = client.get(url)
        checked += 1
        if not _refused_anonymously(app, rule, resp):
            wrong.append(f"{url}: {resp.status_code} -> {resp.location}")
    assert checked >= 4
    assert not wrong, "\n".join(wrong)


def test_anonymous_post_to_guarded_routes_changes_nothing(app, client, factory):
    """Without a session a POST is refused (CSRF or sign-in) and never succeeds."""
    user = factory.user("reviewer")
    ids = {"user_id": user.id, "org_id": user.organisation_id, "seq": 1}
    wrong = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "POST" not in rule.methods or _access(app, rule.endpoint) == "public":
            continue
        url = sample_url(rule, ids)
        resp = client.post(url, data={"role": "admin", "level": "csi", "reason": "x"})
        if not (resp.status_code == 400 or _refused_anonymously(app, rule, resp)):
            wrong.append(f"{url}: {resp.status_code} -> {resp.location}")
    assert not wrong, "\n".join(wrong)
    with app.app_context():
        from portal import db
        from portal.access.models import Clearance
        from portal.auth.models import User
        import sqlalchemy as sa

        s = db.session()
        assert s.execute(sa.select(User.role).where(User.id == user.id)).scalar_one() == "reviewer"
        assert s.execute(sa.select(sa.func.count()).select_from(Clearance)).scalar_one() == 1
