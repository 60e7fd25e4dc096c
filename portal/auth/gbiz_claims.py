"""What a GビズID sign-in says about a person, read from the claims of its ID token.

The one place that knows the provider's claim names and values. They follow the connection
guideline (GビズID 接続システム向けガイドライン) the Digital Agency gives a connected service;
when the production connection names a claim differently, change it here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portal.core.text import first_control
from portal.orgs.corporate_number import check_digit

# The portal's field → the provider's claim.
CLAIMS: dict[str, str] = {
    "subject": "sub",  # the account's unique, never reassigned id (アカウント管理番号 as the subject)
    "account_type": "account_type",  # gBizIDプライム / メンバー / エントリー
    "corporate_number": "corporate_number",  # 法人番号 of the company the account belongs to
    "name": "name",
    "email": "email",
}

# The provider's value of the account type claim → the portal's name for it.
ACCOUNT_TYPES: dict[str, str] = {
    "prime": "prime",  # the representative's account, proofed with the company's seal certificate
    "member": "member",  # created by the Prime holder for staff
    "entry": "entry",  # self-registered, unproofed
}


class ClaimsProblem(ValueError):
    """The ID token lacks a claim the portal needs, or holds one it cannot use."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GbizIdentity:
    subject: str
    account_type: str  # prime | member | entry
    corporate_number: str
    name: str
    email: str
    acr: str | None  # how the provider authenticated the person (its own second factor)
    amr: str | None

    def audit_details(self) -> dict:
        """Identifiers only (never the name): what the audit trail keeps of a sign-in attempt."""
        return {"subject": self.subject, "account_type": self.account_type,
                "corporate_number": self.corporate_number, "acr": self.acr, "amr": self.amr}


def _text(claims: Mapping, field: str, limit: int) -> str:
    value = claims.get(CLAIMS[field])
    if not isinstance(value, str) or not value.strip() or len(value) > limit or first_control(value):
        raise ClaimsProblem(f"claim_{field}")
    return value.strip()


def valid_corporate_number(value: str) -> bool:
    return len(value) == 13 and value.isascii() and value.isdigit() and int(value[0]) == check_digit(value[1:])


def identity_from(claims: Mapping) -> GbizIdentity:
    """The person a verified ID token names; ClaimsProblem when it cannot be used."""
    kind = ACCOUNT_TYPES.get(str(claims.get(CLAIMS["account_type"], "")))
    if kind is None:
        raise ClaimsProblem("claim_account_type")
    number = _text(claims, "corporate_number", 13)
    if not valid_corporate_number(number):
        raise ClaimsProblem("claim_corporate_number")
    amr = claims.get("amr")
    acr = claims.get("acr")
    return GbizIdentity(
        subject=_text(claims, "subject", 255),
        account_type=kind,
        corporate_number=number,
        name=_text(claims, "name", 200),
        email=_text(claims, "email", 254),
        acr=str(acr)[:255] if acr is not None else None,
        amr=" ".join(str(m) for m in amr)[:255] if isinstance(amr, list) else None,
    )
