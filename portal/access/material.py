"""What every piece of a case offers the request path: its own labels, its case, its identity."""
from __future__ import annotations

from typing import ClassVar


class CaseMaterial:
    """Mixin for a version, a message or note, a file, an inform: decided on its own labels
    (``access_labels``, fixed when it was written) and on the case it belongs to (rule 7)."""

    audit_kind: ClassVar[str]

    def policy_target(self):
        return self.access_labels()  # type: ignore[attr-defined]

    def policy_parent(self):
        """The case it belongs to: reaching it needs the case too."""
        return self.report.access_labels()  # type: ignore[attr-defined]

    @property
    def audit_target(self) -> tuple[str, int]:
        return (self.audit_kind, self.id)  # type: ignore[attr-defined]
