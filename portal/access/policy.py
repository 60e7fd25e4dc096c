"""The one access policy (DESIGN §3). Pure: it reads labels from the user and the object and
decides; it never touches the request or the database. Unknown actions, roles, levels or
object kinds deny.

Every route, CLI command, export and job asks ``decide``; the web layer turns a denial into
404 (when the object must not be known to exist) or 403, and records it in the audit trail.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from portal.access.levels import COMPANY_ROLES, Level, Role


class Action(StrEnum):
    # The user's own account: password, two-factor, language.
    ACCOUNT_SELF = "account.self"
    # Case content (reports and everything inside them).
    REPORT_CREATE = "report.create"
    REPORT_LIST = "report.list"
    REPORT_VIEW = "report.view"
    REPORT_EDIT = "report.edit"
    REPORT_SUBMIT = "report.submit"
    REPORT_WITHDRAW = "report.withdraw"
    REPORT_DELETE = "report.delete"  # a draft never submitted: the company's own working copy
    REPORT_REVIEW = "report.review"  # take, request information, return, close
    REPORT_ASSIGN = "report.assign"  # assign a case to someone else
    ATTACHMENT_UPLOAD = "attachment.upload"
    ATTACHMENT_DOWNLOAD = "attachment.download"
    # Seeing that a file exists (its name, size and scan verdict) in a list, without opening it.
    ATTACHMENT_SEE = "attachment.see"
    ATTACHMENT_DELETE = "attachment.delete"
    MESSAGE_READ = "message.read"
    MESSAGE_POST = "message.post"
    INTERNAL_NOTE_READ = "note.read"
    INTERNAL_NOTE_POST = "note.post"
    INFORM_VIEW = "inform.view"
    INFORM_DRAFT = "inform.draft"
    INFORM_APPROVE = "inform.approve"
    INFORM_REVOKE = "inform.revoke"
    INFORM_ACKNOWLEDGE = "inform.acknowledge"
    # Organisation administration by a company's org_admin.
    ORG_MEMBERS_VIEW = "org.members.view"
    ORG_MEMBER_INVITE = "org.members.invite"
    ORG_MEMBER_DISABLE = "org.members.disable"
    # System administration (METI IT).
    USERS_ADMIN = "users.admin"  # list users and organisations, create users and organisations
    USER_CHANGE_ROLE = "user.role.change"
    USER_DISABLE = "user.disable"
    CATALOGUE_MANAGE = "catalogue.manage"
    OUTBOX_READ = "outbox.read"
    # Security officers.
    CLEARANCES_ADMIN = "clearances.admin"  # see the clearance console
    CLEARANCE_GRANT = "clearance.grant"  # grant, renew, change compartments
    CLEARANCE_REVOKE = "clearance.revoke"
    FACILITY_CLEARANCE_MANAGE = "facility.manage"
    # Auditors.
    DASHBOARD_VIEW = "dashboard.view"
    REVIEW_QUEUE = "review.queue"
    AUDIT_READ = "audit.read"
    AUDIT_EXPORT = "audit.export"


class Kind(StrEnum):
    SELF = "self"
    CONTENT = "content"
    ORG = "org"
    USER = "user"
    SYSTEM = "system"


R = Role
_CASE_WORKERS = {R.REVIEWER, R.APPROVER}
_COMPANY = {R.FILER, R.ORG_ADMIN}

# action -> (roles allowed, kind of object it applies to)
RULES: dict[Action, tuple[frozenset[Role], Kind]] = {
    Action.ACCOUNT_SELF: (frozenset(Role), Kind.SELF),
    Action.REPORT_CREATE: (frozenset(_COMPANY), Kind.ORG),
    Action.REPORT_LIST: (frozenset(_COMPANY | _CASE_WORKERS), Kind.SYSTEM),
    Action.REPORT_VIEW: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.REPORT_EDIT: (frozenset(_COMPANY), Kind.CONTENT),
    Action.REPORT_SUBMIT: (frozenset(_COMPANY), Kind.CONTENT),
    Action.REPORT_WITHDRAW: (frozenset(_COMPANY), Kind.CONTENT),
    Action.REPORT_DELETE: (frozenset(_COMPANY), Kind.CONTENT),
    Action.REPORT_REVIEW: (frozenset(_CASE_WORKERS), Kind.CONTENT),
    Action.REPORT_ASSIGN: (frozenset({R.APPROVER}), Kind.CONTENT),
    # Files on the report itself are the company's; METI's files travel with messages and notes.
    Action.ATTACHMENT_UPLOAD: (frozenset(_COMPANY), Kind.CONTENT),
    Action.ATTACHMENT_DOWNLOAD: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.ATTACHMENT_SEE: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.ATTACHMENT_DELETE: (frozenset(_COMPANY), Kind.CONTENT),
    Action.MESSAGE_READ: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.MESSAGE_POST: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.INTERNAL_NOTE_READ: (frozenset(_CASE_WORKERS), Kind.CONTENT),
    Action.INTERNAL_NOTE_POST: (frozenset(_CASE_WORKERS), Kind.CONTENT),
    Action.INFORM_VIEW: (frozenset(_COMPANY | _CASE_WORKERS), Kind.CONTENT),
    Action.INFORM_DRAFT: (frozenset(_CASE_WORKERS), Kind.CONTENT),
    Action.INFORM_APPROVE: (frozenset({R.APPROVER}), Kind.CONTENT),
    Action.INFORM_REVOKE: (frozenset({R.APPROVER}), Kind.CONTENT),
    Action.INFORM_ACKNOWLEDGE: (frozenset(_COMPANY), Kind.CONTENT),
    Action.ORG_MEMBERS_VIEW: (frozenset({R.ORG_ADMIN}), Kind.ORG),
    Action.ORG_MEMBER_INVITE: (frozenset({R.ORG_ADMIN}), Kind.ORG),
    Action.ORG_MEMBER_DISABLE: (frozenset({R.ORG_ADMIN}), Kind.USER),
    Action.USERS_ADMIN: (frozenset({R.ADMIN}), Kind.SYSTEM),
    Action.USER_CHANGE_ROLE: (frozenset({R.ADMIN}), Kind.USER),
    Action.USER_DISABLE: (frozenset({R.ADMIN}), Kind.USER),
    Action.CATALOGUE_MANAGE: (frozenset({R.ADMIN}), Kind.SYSTEM),
    Action.OUTBOX_READ: (frozenset({R.ADMIN}), Kind.SYSTEM),
    Action.CLEARANCES_ADMIN: (frozenset({R.SECURITY_OFFICER}), Kind.SYSTEM),
    Action.CLEARANCE_GRANT: (frozenset({R.SECURITY_OFFICER}), Kind.USER),
    Action.CLEARANCE_REVOKE: (frozenset({R.SECURITY_OFFICER}), Kind.USER),
    Action.FACILITY_CLEARANCE_MANAGE: (frozenset({R.SECURITY_OFFICER}), Kind.ORG),
    Action.DASHBOARD_VIEW: (frozenset({R.APPROVER}), Kind.SYSTEM),
    Action.REVIEW_QUEUE: (frozenset(_CASE_WORKERS), Kind.SYSTEM),
    Action.AUDIT_READ: (frozenset({R.AUDITOR}), Kind.SYSTEM),
    Action.AUDIT_EXPORT: (frozenset({R.AUDITOR}), Kind.SYSTEM),
}

# Actions that write into a channel someone else reads: rule 6 (no write-down) applies.
WRITE_ACTIONS = frozenset({Action.MESSAGE_POST, Action.INTERNAL_NOTE_POST, Action.ATTACHMENT_UPLOAD})
# Actions that remove material: never on what is frozen (rule 7: labels and content are fixed).
REMOVE_ACTIONS = frozenset({Action.ATTACHMENT_DELETE})
# Actions on a stored file that its malware scan conditions (_scan_condition).
SCANNED_ACTIONS = frozenset({Action.ATTACHMENT_DOWNLOAD, Action.ATTACHMENT_SEE})
SCAN_STATES = frozenset({"pending", "clean", "infected", "error"})
# Decisions the author of the object may never take on it (DESIGN §2: never their own draft).
FOUR_EYES_ACTIONS = frozenset({Action.INFORM_APPROVE})


def roles_allowed(action: Action) -> frozenset[Role]:
    """The roles that may ever take ``action`` (its object's labels decide the rest): for state
    kept ahead of a decision, such as who a new message is unread for."""
    return RULES[action][0]


def compartment_set(text: str | None) -> frozenset[str]:
    """Compartments as stored on an object (space-separated technology codes)."""
    return frozenset((text or "").split())


def compartment_text(codes) -> str:
    return " ".join(sorted(codes))


@dataclass(frozen=True)
class Subject:
    """What the policy knows of a user: a snapshot taken per request from the database."""

    user_id: int
    role: str
    org_id: int
    active: bool
    clearance_level: str | None  # None: no current grant
    clearance_expires_on: date | None
    compartments: frozenset[str] = frozenset()
    org_facility_valid: bool = False
    # The compartments' technology ids, for the SQL form of the policy (None: not looked up).
    compartment_ids: frozenset[int] | None = None


@dataclass(frozen=True)
class Labels:
    """What the policy knows of an object of case content."""

    org_id: int
    classification: str
    compartments: frozenset[str]
    # For writes (rule 6): who reads the channel written into: "company" or "government".
    audience: str | None = None
    # A draft is the company's working copy: nobody outside the organisation knows it exists.
    draft: bool = False
    # METI-only content (internal notes and their attachments): companies never see it.
    internal: bool = False
    # For company-visible writes: does the company hold a valid facility clearance (rule 5/6)?
    audience_facility_valid: bool = True
    # Material that can no longer change: a message, a note and their files (append-only), a
    # file frozen into a submitted version. Nobody deletes it.
    frozen: bool = False
    # Who wrote it, where the author may not also decide it (four eyes: an inform's drafter).
    author_id: int | None = None
    # A file's malware scan (None: not a file): pending, clean, infected or error; and who
    # uploaded it (the only person who sees it before its verdict).
    scan_state: str | None = None
    uploader_id: int | None = None


class Protected(Protocol):
    def access_labels(self) -> Labels: ...


@dataclass(frozen=True)
class OrgTarget:
    org_id: int


@dataclass(frozen=True)
class UserTarget:
    user_id: int
    org_id: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # True when the object's existence must not be revealed (another organisation's): 404.
    conceal: bool = False

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True, "allowed")


def _deny(reason: str, conceal: bool = False) -> Decision:
    return Decision(False, reason, conceal)


def decide(subject: Subject | None, action: object, obj: object = None, *, today: date) -> Decision:
    if subject is None:
        return _deny("not_signed_in")
    if not isinstance(action, Action) or action not in RULES:
        return _deny("unknown_action")
    role = Role.parse(subject.role)
    if role is None:
        return _deny("unknown_role")
    if not subject.active:
        return _deny("account_disabled")
    roles, kind = RULES[action]

    if kind is Kind.SELF:
        return ALLOW

    # An object's labels are read once per decision: a message's or a file's are built from
    # its case each time they are asked for, and a case page decides every message and file.
    obj_labels = _labels_of(obj)
    # Another organisation's object is concealed from company users before anything else,
    # so that a role or clearance denial cannot reveal that it exists.
    obj_org = _org_of(obj, obj_labels)
    if role in COMPANY_ROLES and obj_org is not None and obj_org != subject.org_id:
        return _deny("other_organisation", conceal=True)

    # A company's draft is concealed from everyone outside the company, before any other rule.
    if role not in COMPANY_ROLES and getattr(obj_labels, "draft", False):
        return _deny("draft", conceal=True)
    # METI-only content is concealed from companies the same way.
    if role in COMPANY_ROLES and getattr(obj_labels, "internal", False):
        return _deny("internal", conceal=True)

    # Rule 1: role.
    if role not in roles:
        return _deny("role")

    # Rule 3: a valid personal clearance.
    level = Level.parse(subject.clearance_level) if subject.clearance_level else None
    if level is None or subject.clearance_expires_on is None:
        return _deny("no_clearance")
    if subject.clearance_expires_on < today:
        return _deny("clearance_expired")

    if kind is Kind.SYSTEM:
        if obj is not None:
            return _deny("unexpected_object")
        return ALLOW
    if kind is Kind.ORG:
        if not isinstance(obj, OrgTarget):
            return _deny("unknown_object")
        if role in COMPANY_ROLES and obj.org_id != subject.org_id:
            return _deny("other_organisation", conceal=True)
        return ALLOW
    if kind is Kind.USER:
        if not isinstance(obj, UserTarget):
            return _deny("unknown_object")
        if obj.user_id == subject.user_id:
            return _deny("self")
        if role in COMPANY_ROLES and obj.org_id != subject.org_id:
            return _deny("other_organisation", conceal=True)
        return ALLOW

    # Case content: rules 2, 4, 5, 6.
    labels = obj_labels
    if not isinstance(labels, Labels):
        return _deny("unknown_object")
    classification = Level.parse(labels.classification)
    if classification is None:
        return _deny("unknown_classification")
    if role in COMPANY_ROLES and labels.org_id != subject.org_id:
        return _deny("other_organisation", conceal=True)
    if level < classification:
        return _deny("clearance_level")
    if not labels.compartments <= subject.compartments:
        return _deny("compartment")
    if role in COMPANY_ROLES and classification >= Level.CONFIDENTIAL and not subject.org_facility_valid:
        return _deny("facility_clearance")
    if action in FOUR_EYES_ACTIONS and labels.author_id == subject.user_id:
        return _deny("four_eyes")
    if action in REMOVE_ACTIONS and labels.frozen:
        return _deny("frozen")
    if action in SCANNED_ACTIONS and labels.scan_state is not None:
        scanned = _scan_condition(action, labels, subject)
        if not scanned.allowed:
            return scanned
    if action in WRITE_ACTIONS:
        if labels.audience not in {"company", "government"}:
            return _deny("unknown_audience")
        # The company reads the external channel; it never holds csi, and above restricted
        # only with a valid facility clearance, which the writer cannot vouch for: so a
        # company-visible write is capped at what the case itself carries and never csi.
        if labels.audience == "company" and not company_may_read(classification, labels.audience_facility_valid):
            return _deny("write_down")
    return ALLOW


def _scan_condition(action: Action, labels: Labels, subject: Subject) -> Decision:
    """Only a clean file is opened by anyone. Before its verdict (pending, or a scan that
    failed) a file exists for its uploader alone; a refused (infected) file stays listed,
    unopenable, for everyone who could otherwise read it: the uploader sees why, METI sees
    that it was refused. Any other state denies."""
    state = labels.scan_state
    if state == "clean":
        return ALLOW
    if state not in SCAN_STATES:
        return _deny("scan_unknown")
    own = labels.uploader_id is not None and labels.uploader_id == subject.user_id
    if state == "infected":
        return ALLOW if action is Action.ATTACHMENT_SEE else _deny("scan_infected")
    if not own:
        return _deny(f"scan_{state}", conceal=True)
    return ALLOW if action is Action.ATTACHMENT_SEE else _deny(f"scan_{state}")


def _labels_of(obj: object) -> "Labels | None":
    if isinstance(obj, Labels):
        return obj
    if hasattr(obj, "access_labels"):
        return obj.access_labels()
    return None


def _org_of(obj: object, labels: "Labels | None") -> int | None:
    if isinstance(obj, (OrgTarget, UserTarget)):
        return obj.org_id
    if labels is not None:
        return labels.org_id
    return None


def company_may_read(level: Level, facility_valid: bool) -> bool:
    """The highest classification a company audience may read (rule 6 helper)."""
    if level >= Level.CSI:
        return False
    if level >= Level.CONFIDENTIAL:
        return facility_valid
    return True
