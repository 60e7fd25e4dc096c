"""The access matrix (DESIGN §2–§3, issue 3 item 4), on the pure policy.

The expected outcome of every cell is written down here, from the design's words, by
``expected_content`` / ``expected_system`` / ``expected_admin`` below. They never call the
policy: if the policy and this table disagree, the test fails and names the cell.

Outcomes: ALLOW, DENY (the user sees 403), CONCEAL (404: the object must not be known to
exist, DESIGN §3 "another organisation's report is a 404").
"""
from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from portal.access.policy import Action, Labels, OrgTarget, Subject, UserTarget, decide

TODAY = date(2026, 11, 21)
ALLOW, DENY, CONCEAL = "allow", "deny", "conceal"

OWN_ORG, OTHER_ORG = 1, 2
ME, SOMEONE = 10, 20

# DESIGN §3 rule 2: the levels, in order.
LEVELS = ["public", "restricted", "confidential", "csi"]
RANK = {name: i for i, name in enumerate(LEVELS)}

ROLES = ["filer", "org_admin", "reviewer", "approver", "auditor", "security_officer", "admin"]
COMPANY = {"filer", "org_admin"}
CASE_WORKERS = {"reviewer", "approver"}

# DESIGN §2, the "does" column, as who may take each action on case content.
#   filer/org_admin: read their reports, answer the dialogue, acknowledge informs.
#   reviewer: holds the dialogue, writes internal notes, drafts informs.
#   approver: everything a reviewer does, plus approves informs.
#   auditor, security_officer, admin: no content access at all (separation of duties).
CONTENT_ROLES = {
    Action.REPORT_VIEW: COMPANY | CASE_WORKERS,
    Action.ATTACHMENT_DOWNLOAD: COMPANY | CASE_WORKERS,
    Action.MESSAGE_POST: COMPANY | CASE_WORKERS,
    Action.INTERNAL_NOTE_POST: CASE_WORKERS,
    Action.INFORM_VIEW: COMPANY | CASE_WORKERS,
    Action.INFORM_ACKNOWLEDGE: COMPANY,
    Action.INFORM_DRAFT: CASE_WORKERS,
    Action.INFORM_APPROVE: {"approver"},
}
WRITES = {Action.MESSAGE_POST, Action.INTERNAL_NOTE_POST}

# Clearance states of the subject: (level, expires_on). "expired" is a confidential grant
# whose expiry date has passed; "none" is no current grant at all.
CLEARANCES = {
    "public": ("public", TODAY + timedelta(days=365)),
    "restricted": ("restricted", TODAY + timedelta(days=365)),
    "confidential": ("confidential", TODAY + timedelta(days=365)),
    "csi": ("csi", TODAY + timedelta(days=365)),
    "none": (None, None),
    "expired": ("confidential", TODAY - timedelta(days=1)),
}


def subject(role: str, clearance: str, compartment: bool, facility: bool, *, active: bool = True,
            user_id: int = ME) -> Subject:
    level, expires = CLEARANCES[clearance]
    return Subject(user_id=user_id, role=role, org_id=OWN_ORG, active=active, clearance_level=level,
                   clearance_expires_on=expires,
                   compartments=frozenset({"T01", "T08"} if compartment else {"T08"}),
                   org_facility_valid=facility)


# ----------------------------------------------------------------- the objects

def _labels(org: int, classification: str, audience: str | None = None) -> Labels:
    return Labels(org_id=org, classification=classification, compartments=frozenset({"T01"}), audience=audience)


# (name, action, audience, classifications)
CONTENT_OBJECTS = [
    ("report", Action.REPORT_VIEW, None, LEVELS),
    # An attachment carries the report's labels, and may be classified higher than the report.
    ("attachment", Action.ATTACHMENT_DOWNLOAD, None, LEVELS),
    ("external message", Action.MESSAGE_POST, "company", LEVELS),
    ("internal note", Action.INTERNAL_NOTE_POST, "government", LEVELS),
    ("inform", Action.INFORM_VIEW, None, LEVELS),
    ("inform acknowledgement", Action.INFORM_ACKNOWLEDGE, None, ["restricted", "confidential"]),
    ("inform draft", Action.INFORM_DRAFT, None, ["restricted"]),
    ("inform approval", Action.INFORM_APPROVE, None, ["restricted"]),
]


def expected_content(role: str, clearance: str, compartment: bool, own: bool, facility: bool,
                     action: Action, classification: str, audience: str | None) -> str:
    level, expires = CLEARANCES[clearance]
    # Rule 5 and the no-existence-leak rule: a company user never learns that another
    # organisation's object exists, whatever else is wrong.
    if role in COMPANY and not own:
        return CONCEAL
    # Rule 1 (and separation of duties: admin, security_officer, auditor hold no content).
    if role not in CONTENT_ROLES[action]:
        return DENY
    # Rule 3: granted and not expired.
    if level is None or expires < TODAY:
        return DENY
    # Rule 2: level >= classification.
    if RANK[level] < RANK[classification]:
        return DENY
    # Rule 4: every compartment of the object (T01).
    if not compartment:
        return DENY
    # Rule 5: confidential and above needs the company's facility clearance.
    if role in COMPANY and RANK[classification] >= RANK["confidential"] and not facility:
        return DENY
    # Rule 6: no write-down; csi never goes into the company-visible channel.
    if action in WRITES and audience == "company" and classification == "csi":
        return DENY
    return ALLOW


def expected_system(role: str, clearance: str) -> str:
    """The audit log: auditors only (DESIGN §2), with a valid clearance (rule 3). It carries
    no classification, compartment or organisation."""
    level, expires = CLEARANCES[clearance]
    if role != "auditor":
        return DENY
    if level is None or expires < TODAY:
        return DENY
    return ALLOW


def outcome(decision) -> str:
    if decision.allowed:
        assert not decision.conceal
        return ALLOW
    assert decision.reason, "every denial has a reason"
    return CONCEAL if decision.conceal else DENY


SUBJECTS = list(itertools.product(ROLES, list(CLEARANCES), [True, False], [True, False], [True, False]))


def _sid(p):
    role, clearance, comp, own, fac = p
    return f"{role}-{clearance}-{'T01' if comp else 'noT01'}-{'own' if own else 'other'}-{'fac' if fac else 'nofac'}"


@pytest.mark.parametrize("cell", SUBJECTS, ids=[_sid(p) for p in SUBJECTS])
def test_access_matrix(cell):
    role, clearance, comp, own, fac = cell
    s = subject(role, clearance, comp, fac)
    org = OWN_ORG if own else OTHER_ORG
    wrong = []
    checked = 0
    for name, action, audience, classes in CONTENT_OBJECTS:
        for cls in classes:
            want = expected_content(role, clearance, comp, own, fac, action, cls, audience)
            d = decide(s, action, _labels(org, cls, audience), today=TODAY)
            got = outcome(d)
            checked += 1
            if got != want:
                wrong.append(f"{name} [{cls}] {action}: expected {want}, policy said {got} ({d.reason})")
    for action in (Action.AUDIT_READ, Action.AUDIT_EXPORT):
        want = expected_system(role, clearance)
        d = decide(s, action, None, today=TODAY)
        checked += 1
        if outcome(d) != want:
            wrong.append(f"audit log {action}: expected {want}, policy said {outcome(d)} ({d.reason})")
    assert checked == 26
    assert not wrong, "\n".join(wrong)


def test_matrix_is_not_vacuous():
    """The table above allows, denies and conceals: a table that says 'deny' everywhere
    would pass against a policy that denies everything."""
    seen = {ALLOW: 0, DENY: 0, CONCEAL: 0}
    for role, clearance, comp, own, fac in SUBJECTS:
        for _, action, audience, classes in CONTENT_OBJECTS:
            for cls in classes:
                seen[expected_content(role, clearance, comp, own, fac, action, cls, audience)] += 1
    assert all(n > 100 for n in seen.values()), seen
    # Spot checks of the table itself against the design's examples.
    assert expected_content("reviewer", "csi", True, False, False, Action.REPORT_VIEW, "csi", None) == ALLOW
    assert expected_content("reviewer", "csi", True, False, False, Action.MESSAGE_POST, "csi", "company") == DENY
    assert expected_content("reviewer", "csi", True, False, False, Action.INTERNAL_NOTE_POST, "csi", "government") == ALLOW
    assert expected_content("filer", "csi", True, False, True, Action.REPORT_VIEW, "public", None) == CONCEAL
    assert expected_content("filer", "confidential", True, True, False, Action.REPORT_VIEW, "confidential", None) == DENY
    assert expected_content("filer", "confidential", True, True, False, Action.REPORT_VIEW, "restricted", None) == ALLOW


# -------------------------------------------------- specific rules, with their reasons

def _reviewer(**kw) -> Subject:
    base = dict(user_id=ME, role="reviewer", org_id=99, active=True, clearance_level="csi",
                clearance_expires_on=TODAY + timedelta(days=10), compartments=frozenset({"T01"}),
                org_facility_valid=True)
    base.update(kw)
    return Subject(**base)


REPORT = _labels(OWN_ORG, "restricted")


def test_clearance_expiring_today_is_still_valid_and_yesterday_is_not():
    assert decide(_reviewer(clearance_expires_on=TODAY), Action.REPORT_VIEW, REPORT, today=TODAY).allowed
    d = decide(_reviewer(clearance_expires_on=TODAY - timedelta(days=1)), Action.REPORT_VIEW, REPORT, today=TODAY)
    assert not d.allowed and d.reason == "clearance_expired" and not d.conceal


@pytest.mark.parametrize("action", ["report.view", "REPORT_VIEW", None, 42, object()])
def test_unknown_action_denies(action):
    d = decide(_reviewer(), action, REPORT, today=TODAY)
    assert not d.allowed and d.reason == "unknown_action"


def test_every_action_has_a_rule():
    from portal.access.policy import RULES

    assert set(RULES) == set(Action)


@pytest.mark.parametrize("role", ["superuser", "", "Reviewer", "root", "system"])
def test_unknown_role_denies_everything(role):
    s = _reviewer(role=role)
    for action in Action:
        d = decide(s, action, REPORT, today=TODAY)
        assert not d.allowed, action
    assert decide(s, Action.ACCOUNT_SELF, None, today=TODAY).reason == "unknown_role"


@pytest.mark.parametrize("classification", ["secret", "top_secret", "", "CSI", "Public"])
def test_unknown_classification_denies(classification):
    d = decide(_reviewer(), Action.REPORT_VIEW, _labels(OWN_ORG, classification), today=TODAY)
    assert not d.allowed and d.reason == "unknown_classification"


@pytest.mark.parametrize("level", ["secret", "top_secret", "CSI"])
def test_unknown_clearance_level_denies(level):
    d = decide(_reviewer(clearance_level=level), Action.REPORT_VIEW, _labels(OWN_ORG, "public"), today=TODAY)
    assert not d.allowed


def test_unknown_object_for_content_denies():
    for obj in (None, {"org_id": OWN_ORG, "classification": "public"}, OrgTarget(OWN_ORG), "report:1"):
        d = decide(_reviewer(), Action.REPORT_VIEW, obj, today=TODAY)
        assert not d.allowed, obj


def test_write_without_known_audience_denies():
    for audience in (None, "public", "everyone"):
        d = decide(_reviewer(), Action.MESSAGE_POST, _labels(OWN_ORG, "public", audience), today=TODAY)
        assert not d.allowed, audience


def test_unknown_compartment_on_object_denies():
    labels = Labels(org_id=OWN_ORG, classification="public", compartments=frozenset({"T99"}))
    d = decide(_reviewer(), Action.REPORT_VIEW, labels, today=TODAY)
    assert not d.allowed and d.reason == "compartment"


def test_object_needs_every_compartment():
    labels = Labels(org_id=OWN_ORG, classification="public", compartments=frozenset({"T01", "T08"}))
    assert not decide(_reviewer(compartments=frozenset({"T01"})), Action.REPORT_VIEW, labels, today=TODAY).allowed
    assert decide(_reviewer(compartments=frozenset({"T01", "T08", "T19"})), Action.REPORT_VIEW, labels,
                  today=TODAY).allowed


def test_not_signed_in_denies():
    for action in Action:
        assert not decide(None, action, REPORT, today=TODAY).allowed


@pytest.mark.parametrize("role", ROLES)
def test_disabled_account_denies_everything(role):
    s = subject(role, "csi", True, True, active=False)
    objs = [None, REPORT, OrgTarget(OWN_ORG), UserTarget(SOMEONE, OWN_ORG), _labels(OWN_ORG, "public", "company")]
    for action in Action:
        for obj in objs:
            d = decide(s, action, obj, today=TODAY)
            assert not d.allowed, (action, obj)
    assert decide(s, Action.ACCOUNT_SELF, None, today=TODAY).reason == "account_disabled"


CONTENT_ACTIONS = [a for a in Action if a.value.split(".")[0] in {"report", "attachment", "message", "note", "inform"}]


@pytest.mark.parametrize("role", ["admin", "security_officer", "auditor"])
def test_separation_of_duties_no_content_at_all(role):
    """The highest clearance, every compartment, own organisation, facility valid:
    still nothing of case content, for reading, writing, listing or creating."""
    s = Subject(user_id=ME, role=role, org_id=OWN_ORG, active=True, clearance_level="csi",
                clearance_expires_on=TODAY + timedelta(days=3650),
                compartments=frozenset(f"T{i:02d}" for i in range(1, 20)), org_facility_valid=True)
    assert len(CONTENT_ACTIONS) >= 15
    for action in CONTENT_ACTIONS:
        for cls in LEVELS:
            for audience in (None, "company", "government"):
                obj = Labels(OWN_ORG, cls, frozenset(), audience)
                d = decide(s, action, obj, today=TODAY)
                assert not d.allowed, (action, cls, audience)
        assert not decide(s, action, OrgTarget(OWN_ORG), today=TODAY).allowed
        assert not decide(s, action, None, today=TODAY).allowed


# ---------------------------------------------- administration: org, user and system actions

ADMIN_ACTIONS_ROLES = {
    # action: (roles allowed by DESIGN §2, kind)
    Action.ORG_MEMBERS_VIEW: ({"org_admin"}, "org"),
    Action.ORG_MEMBER_INVITE: ({"org_admin"}, "org"),
    Action.ORG_MEMBER_DISABLE: ({"org_admin"}, "user"),
    Action.USER_CHANGE_ROLE: ({"admin"}, "user"),
    Action.USER_DISABLE: ({"admin"}, "user"),
    Action.CLEARANCE_GRANT: ({"security_officer"}, "user"),
    Action.CLEARANCE_REVOKE: ({"security_officer"}, "user"),
    Action.FACILITY_CLEARANCE_MANAGE: ({"security_officer"}, "org"),
    Action.USERS_ADMIN: ({"admin"}, "system"),
    Action.OUTBOX_READ: ({"admin"}, "system"),
    Action.CATALOGUE_MANAGE: ({"admin"}, "system"),
    Action.CLEARANCES_ADMIN: ({"security_officer"}, "system"),
    Action.AUDIT_READ: ({"auditor"}, "system"),
    Action.AUDIT_EXPORT: ({"auditor"}, "system"),
}

TARGETS = ["own", "other", "self"]


def expected_admin(role: str, action: Action, target: str, clearance: str) -> str:
    roles, kind = ADMIN_ACTIONS_ROLES[action]
    level, expires = CLEARANCES[clearance]
    if kind == "system" and target != "own":
        return "skip"
    if kind == "org" and target == "self":
        return "skip"
    if role in COMPANY and target == "other":
        return CONCEAL  # an org_admin can never reach another organisation, not even to learn it exists
    if role not in roles:
        return DENY
    if level is None or expires < TODAY:
        return DENY
    if target == "self":
        return DENY  # nobody changes their own roles or clearance, or disables themselves
    return ALLOW


ADMIN_CELLS = [c for c in itertools.product(ROLES, list(ADMIN_ACTIONS_ROLES), TARGETS, ["restricted", "none", "expired"])
               if expected_admin(*c) != "skip"]


@pytest.mark.parametrize("role,action,target,clearance", ADMIN_CELLS,
                         ids=[f"{r}-{a.value}-{t}-{c}" for r, a, t, c in ADMIN_CELLS])
def test_administration_matrix(role, action, target, clearance):
    s = subject(role, clearance, True, True)
    kind = ADMIN_ACTIONS_ROLES[action][1]
    org = OWN_ORG if target in ("own", "self") else OTHER_ORG
    obj = {"org": OrgTarget(org), "system": None,
           "user": UserTarget(ME if target == "self" else SOMEONE, org)}[kind]
    d = decide(s, action, obj, today=TODAY)
    assert outcome(d) == expected_admin(role, action, target, clearance), d.reason
    if target == "self" and role in ADMIN_ACTIONS_ROLES[action][0] and clearance == "restricted":
        assert d.reason == "self"


@pytest.mark.parametrize("action", [Action.CLEARANCE_GRANT, Action.CLEARANCE_REVOKE, Action.USER_CHANGE_ROLE,
                                    Action.USER_DISABLE, Action.ORG_MEMBER_DISABLE])
def test_nobody_acts_on_themselves(action):
    """Whoever holds the role for it, at any level: self is refused with reason 'self'."""
    role = next(iter(ADMIN_ACTIONS_ROLES[action][0]))
    for level in LEVELS:
        s = Subject(user_id=ME, role=role, org_id=OWN_ORG, active=True, clearance_level=level,
                    clearance_expires_on=TODAY + timedelta(days=30), compartments=frozenset({"T01"}),
                    org_facility_valid=True)
        d = decide(s, action, UserTarget(ME, OWN_ORG), today=TODAY)
        assert not d.allowed and d.reason == "self" and not d.conceal
        # ... while the same person may act on a colleague.
        assert decide(s, action, UserTarget(SOMEONE, OWN_ORG), today=TODAY).allowed


def test_org_admin_reaches_no_other_organisation_whatever_the_object():
    s = subject("org_admin", "csi", True, True)
    for action in (Action.ORG_MEMBERS_VIEW, Action.ORG_MEMBER_INVITE):
        d = decide(s, action, OrgTarget(OTHER_ORG), today=TODAY)
        assert not d.allowed and d.conceal and d.reason == "other_organisation"
    d = decide(s, Action.ORG_MEMBER_DISABLE, UserTarget(SOMEONE, OTHER_ORG), today=TODAY)
    assert not d.allowed and d.conceal and d.reason == "other_organisation"


def test_system_action_with_an_object_denies():
    s = subject("auditor", "restricted", True, True)
    assert decide(s, Action.AUDIT_READ, None, today=TODAY).allowed
    assert not decide(s, Action.AUDIT_READ, OrgTarget(OWN_ORG), today=TODAY).allowed


def test_user_action_on_wrong_kind_of_object_denies():
    s = subject("security_officer", "restricted", True, True)
    for obj in (None, OrgTarget(OWN_ORG), REPORT, SOMEONE):
        assert not decide(s, Action.CLEARANCE_GRANT, obj, today=TODAY).allowed, obj


@pytest.mark.parametrize("role", ROLES)
def test_account_self_needs_only_an_active_account(role):
    """Changing one's own password or 2FA must work even without a clearance."""
    for clearance in ("none", "expired", "public"):
        assert decide(subject(role, clearance, False, False), Action.ACCOUNT_SELF, None, today=TODAY).allowed
