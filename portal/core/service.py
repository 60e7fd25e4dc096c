"""The exceptions services raise for a refused request: a message for the person (already
translated) and a short machine reason for the audit trail."""
from __future__ import annotations


class ServiceError(Exception):
    """The request cannot be done as asked (bad input, wrong state): the person is told why,
    nothing the service did is kept, and the attempt is recorded as a failure."""

    def __init__(self, message: str, *, field: str | None = None, reason: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.reason = reason


class Refused(ServiceError):
    """The policy refused an action a service asked about (a sub-object's own labels, a
    choice the person made in the body). The request path answers it like a refusal at the
    route: 404 when the object must stay unknown, 403 otherwise, with an audit event."""

    def __init__(self, message: str, reason: str, conceal: bool = False):
        super().__init__(message, reason=reason)
        self.conceal = conceal
