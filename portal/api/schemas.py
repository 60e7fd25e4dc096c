"""The API's request and response bodies as pydantic models: they parse what clients send
(types, lengths, the lists of codes) and are the source of the OpenAPI document's schemas
(portal.api.openapi). The scheme's rules are not here: the same step forms and services as the
web pages apply them (portal.api.drafts)."""
from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from portal.reports import content as C
from portal.reports import states as S


def _clean(value: str) -> str:
    # PostgreSQL refuses NUL in text, and a lone surrogate (legal in JSON) cannot be stored.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def Text(max_length: int, min_length: int = 0):  # a type, named like one
    return Annotated[str, Field(max_length=max_length, min_length=min_length), AfterValidator(_clean)]


# RFC 3339 with an offset: what a client reads back is never a local time without a zone.
Timestamp = Annotated[AwareDatetime, PlainSerializer(lambda d: d.isoformat(timespec="seconds"), return_type=str,
                                                     when_used="json")]

TransferForm = StrEnum("TransferForm", {k: k for k in C.TRANSFER_FORMS})  # type: ignore[misc]
Relation = StrEnum("Relation", {k: k for k in C.RELATIONS})  # type: ignore[misc]
Measure = StrEnum("Measure", {k: k for k in C.MEASURES})  # type: ignore[misc]
Classification = StrEnum("Classification", {k: k for k in C.FILER_CLASSIFICATIONS})  # type: ignore[misc]
Status = StrEnum("Status", {k: k for k in S.STATUS_LABELS})  # type: ignore[misc]
Scope = Literal["reports:read", "reports:write", "messages", "informs"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportFields(Strict):
    """A report's content, every field optional: a draft is written a step at a time (the web
    form's steps), and a step is saved whole, so the fields of a step sent are merged with what
    the draft holds and that step must then be complete (the web's rules, field by field)."""
    contact_name: Text(200) | None = None
    contact_email: Text(254) | None = None
    contact_phone: Text(30) | None = None
    technology: Text(32) | None = Field(None, description="A code from GET /api/v1/technologies, e.g. T01.")
    description: Text(10000) | None = None
    transfer_form: TransferForm | None = None
    classification: Classification | None = None
    counterparty_name: Text(200) | None = None
    counterparty_country: Text(2) | None = Field(None, description="ISO 3166-1 alpha-2.")
    counterparty_address: Text(400) | None = None
    counterparty_relation: Relation | None = None
    shareholding: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    destination_country: Text(2) | None = Field(None, description="ISO 3166-1 alpha-2; not JP.")
    contract_date: date | None = None
    transfer_date: date | None = None
    contract_value: Annotated[int, Field(ge=0, le=10**15)] | None = None
    currency: Text(3) | None = Field(None, description="ISO 4217.")
    group_a_confirmed: bool | None = None
    measures: Annotated[list[Measure], Field(max_length=len(C.MEASURES))] | None = None


class SubmitIn(Strict):
    attest: Literal[True] = Field(description="The declaration of the web's check page: the information is true "
                                              "and complete.")


class WithdrawIn(Strict):
    comment: Text(10000, 1)


class MessageIn(Strict):
    body: Text(10000, 1)
    classification: Classification
    reply_to: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class AcknowledgeIn(Strict):
    confirm: Literal[True] = Field(description="We have received this inform (the web's confirmation box).")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")  # like the web list, unknown parameters change nothing

    status: Status | None = None
    technology: Text(32) | None = None
    cursor: Text(200) | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class Technology(Strict):
    code: str
    name_ja: str
    name_en: str
    effective_from: date
    effective_until: date | None


class TechnologyList(Strict):
    items: list[Technology]


class ReportSummary(Strict):
    id: int
    reference: str | None
    status: Status
    title: str
    technology: str | None
    classification: str
    destination_country: str | None
    planned_transfer_date: date | None
    submitted_at: Timestamp | None
    updated_at: Timestamp
    url: str


class ReportList(Strict):
    items: list[ReportSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class Attachment(Strict):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    classification: str
    version: int | None
    uploaded_at: Timestamp
    download_url: str


class AttachmentList(Strict):
    items: list[Attachment]


class Report(Strict):
    id: int
    reference: str | None
    status: Status
    classification: str
    version_count: int
    created_at: Timestamp
    updated_at: Timestamp
    submitted_at: Timestamp | None
    closed_at: Timestamp | None
    response_due: date | None = Field(description="When METI asked for information: the day the answer is due.")
    content: dict[str, object] = Field(description="The working copy while a draft or returned, else the latest "
                                                  "submitted version (the fields of ReportFields).")
    warnings: dict[str, str] = Field(default_factory=dict, description="Advice on the content that does not "
                                                                       "prevent submission.")
    incomplete_steps: list[str] = Field(default_factory=list)


class Message(Strict):
    id: int
    author: str
    from_government: bool
    body: str
    classification: str
    is_request: bool
    due_date: date | None
    reply_to: int | None
    created_at: Timestamp


class MessageList(Strict):
    items: list[Message]


class Inform(Strict):
    id: int
    number: str | None
    status: str
    legal_basis: str
    reasons: str
    conditions: str
    issued_at: Timestamp | None
    acknowledged_at: Timestamp | None
    notice_url: str | None
    notice_sha256: str | None


class InformList(Strict):
    items: list[Inform]


class FieldProblem(BaseModel):
    field: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    reason: str | None = Field(None, description="A short machine-readable reason (as in the audit trail).")
    errors: list[FieldProblem] | None = None


class UploadForm(BaseModel):
    """multipart/form-data: the file in ``file``; its classification (default: the report's)."""
    file: bytes = Field(json_schema_extra={"format": "binary", "contentMediaType": "application/octet-stream"})
    classification: Classification | None = None

