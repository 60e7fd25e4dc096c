"""The one exception services raise for a refused request: a message for the person (already
translated) and a short machine reason for the audit trail."""
from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str, *, field: str | None = None, reason: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.reason = reason
