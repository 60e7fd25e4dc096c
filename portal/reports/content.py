"""What a report says: the fields, the steps that ask for them, and the rules that know the
scheme (DESIGN §1, §4). Pure functions over the content dict; no database, no request."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from portal.core.i18n import lazy_gettext as _l

TRANSFER_FORMS = {
    "overseas_site": _l("Overseas production site (subsidiary, joint venture)"),
    "outsourcing": _l("Production outsourcing"),
    "licensing": _l("Licensing"),
    "technical_assistance": _l("Technical assistance / sending engineers"),
    "equipment_sale": _l("Sale of manufacturing equipment with know-how"),
    "joint_research": _l("Joint research or development"),
    "co_engineering": _l("Supplier co-engineering (suriawase)"),
    "capital_tie_up": _l("M&A / capital tie-up"),
    "other": _l("Other"),
}

RELATIONS = {
    "subsidiary": _l("Subsidiary"),
    "joint_venture": _l("Joint venture"),
    "affiliate": _l("Affiliate"),
    "unrelated": _l("Unrelated company"),
}
RELATIONS_WITH_SHAREHOLDING = frozenset({"subsidiary", "joint_venture"})

MEASURES = {
    "contract_clauses": _l("Contract clauses on confidentiality, use and re-transfer"),
    "black_boxing": _l("Black-boxing of key know-how"),
    "access_control": _l("Access control to technical information"),
    "personnel": _l("Personnel measures (pledges, training, leavers)"),
    "audit_rights": _l("Audit and reporting rights over the counterparty"),
    "exit_terms": _l("Exit terms: return or destruction of information"),
    "export_control": _l("Export-control screening of the counterparty"),
}

# Classifications a company may assert for its own report (csi is government-held).
FILER_CLASSIFICATIONS = ("public", "restricted", "confidential")

STEPS = ("contact", "technology", "counterparty", "transfer", "measures")

STEP_FIELDS = {
    "contact": ("contact_name", "contact_email", "contact_phone"),
    "technology": ("technology", "description", "transfer_form", "classification"),
    "counterparty": ("counterparty_name", "counterparty_country", "counterparty_address",
                     "counterparty_relation", "shareholding"),
    "transfer": ("destination_country", "contract_date", "transfer_date", "contract_value", "currency",
                 "group_a_confirmed"),
    "measures": ("measures",),
}
REQUIRED = {
    "contact": ("contact_name", "contact_email"),
    "technology": ("technology", "description", "transfer_form", "classification"),
    "counterparty": ("counterparty_name", "counterparty_country", "counterparty_relation"),
    "transfer": ("destination_country", "contract_date", "transfer_date", "contract_value", "currency"),
    "measures": ("measures",),
}
STEP_TITLES = {
    "contact": _l("Contact person"),
    "technology": _l("The technology"),
    "counterparty": _l("The counterparty"),
    "transfer": _l("The transfer"),
    "measures": _l("Management measures"),
}

TARGET_DAYS_BEFORE_TRANSFER = 30


# Planned contract and transfer dates: from 5 years back (a report amended after a return may
# name a contract already signed) to 10 years ahead (the longest plan a report names).
DATE_WINDOW_YEARS = (5, 10)


def parse_date(value) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass
class Findings:
    errors: dict[str, str] = field(default_factory=dict)  # field -> message
    warnings: dict[str, str] = field(default_factory=dict)
    incomplete_steps: list[str] = field(default_factory=list)


def missing_steps(data: dict) -> list[str]:
    out = []
    for step in STEPS:
        for name in REQUIRED[step]:
            v = data.get(name)
            if v is None or v == "" or v == []:
                out.append(step)
                break
    return out


def changed_fields(old: dict, new: dict) -> list[str]:
    keys = [f for step in STEPS for f in STEP_FIELDS[step]]
    return [k for k in keys if old.get(k) != new.get(k)]

FIELD_LABELS = {
    "contact_name": _l("Contact person"),
    "contact_email": _l("Contact e-mail address"),
    "contact_phone": _l("Contact telephone number"),
    "technology": _l("Designated technology"),
    "description": _l("Description of the exact technology"),
    "transfer_form": _l("Form of transfer"),
    "classification": _l("Classification of this report"),
    "counterparty_name": _l("Counterparty name"),
    "counterparty_country": _l("Counterparty country"),
    "counterparty_address": _l("Counterparty address"),
    "counterparty_relation": _l("Relation to your company"),
    "shareholding": _l("Your shareholding (%)"),
    "destination_country": _l("Destination country"),
    "contract_date": _l("Planned contract date"),
    "transfer_date": _l("Planned transfer date"),
    "contract_value": _l("Contract value"),
    "currency": _l("Currency"),
    "group_a_confirmed": _l("Group A destination confirmed"),
    "measures": _l("Management measures planned"),
}
