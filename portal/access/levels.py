"""Roles and classification levels (DESIGN §2, §3). Registered names only: anything else is unknown."""
from __future__ import annotations

from enum import StrEnum

from portal.core.i18n import lazy_gettext as _l


class Role(StrEnum):
    FILER = "filer"
    ORG_ADMIN = "org_admin"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    AUDITOR = "auditor"
    SECURITY_OFFICER = "security_officer"
    ADMIN = "admin"

    @property
    def is_company(self) -> bool:
        return self in COMPANY_ROLES

    @property
    def is_government(self) -> bool:
        return not self.is_company

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])

    @classmethod
    def parse(cls, value: str) -> "Role | None":
        try:
            return cls(value)
        except ValueError:
            return None


COMPANY_ROLES = frozenset({Role.FILER, Role.ORG_ADMIN})
GOVERNMENT_ROLES = frozenset(set(Role) - COMPANY_ROLES)

ROLE_LABELS = {
    Role.FILER: _l("Filer"),
    Role.ORG_ADMIN: _l("Organisation administrator"),
    Role.REVIEWER: _l("Reviewer"),
    Role.APPROVER: _l("Approver"),
    Role.AUDITOR: _l("Auditor"),
    Role.SECURITY_OFFICER: _l("Security officer"),
    Role.ADMIN: _l("System administrator"),
}


class Level(StrEnum):
    PUBLIC = "public"
    RESTRICTED = "restricted"
    CONFIDENTIAL = "confidential"
    CSI = "csi"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    @property
    def label(self) -> str:
        return str(LEVEL_LABELS[self])

    @classmethod
    def parse(cls, value: str) -> "Level | None":
        try:
            return cls(value)
        except ValueError:
            return None


_RANK = {Level.PUBLIC: 0, Level.RESTRICTED: 1, Level.CONFIDENTIAL: 2, Level.CSI: 3}

LEVEL_LABELS = {
    Level.PUBLIC: _l("Public"),
    Level.RESTRICTED: _l("Restricted"),
    Level.CONFIDENTIAL: _l("Confidential"),
    Level.CSI: _l("Critical economic-security information"),
}
