"""The OpenAPI 3.1 document, generated from the code: each API view declares its operation
(``@operation``: summary, query, body and response models), the routes come from Flask's URL
map and the schemas from the pydantic models (pydantic's own JSON Schema generator, whose
2020-12 dialect is OpenAPI 3.1's). Nothing is written by hand, so the document cannot drift
from what the views parse and answer; schemathesis checks the answers against it
(tests/test_api_fuzz.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from portal.access.policy import Action

VERSION = "1.0.0"
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Operation:
    method: str
    summary: str
    responses: dict
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_kind: str = "json"
    tag: str = "reports"
    etag: bool = False
    if_match: str | None = None  # "required" | "optional"
    extra_statuses: tuple[int, ...] = field(default=())


def operation(method: str, summary: str, *, responses: dict, query=None, body=None, body_kind: str = "json",
              tag: str = "reports", etag: bool = False, if_match: str | None = None, extra_statuses=()):
    op = Operation(method, summary, responses, query, body, body_kind, tag, etag, if_match, tuple(extra_statuses))

    def deco(view):
        view._api_operation = op
        return view

    return deco


def _problem(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": {"$ref": ref}}}}


def _strip_null(schema: dict) -> dict:
    """A query parameter is absent rather than null."""
    if "anyOf" in schema:
        rest = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(rest) == 1:
            out = {k: v for k, v in schema.items() if k != "anyOf"}
            out.update(rest[0])
            return out
    return schema


def _inline(schema: dict, defs: dict) -> dict:
    """A parameter's schema stands alone (its model's $defs are not in the document)."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**defs[ref.rsplit("/", 1)[1]], **rest}
    return schema


def document(app) -> dict:
    return _document(app)


@lru_cache(maxsize=4)
def _document(app) -> dict:
    from portal.api import schemas as M
    from portal.auth.tokens import SCOPE_OF

    ops = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        op = getattr(view, "_api_operation", None)
        if op is None:
            continue
        actions = getattr(view, "_actions", {})
        action = next(iter(actions.values()), None)
        ops.append((rule, op, action))
    models: list = [(M.Problem, "serialization")]
    for _rule, op, _a in ops:
        if op.body is not None:
            models.append((op.body, "validation"))
        for r in op.responses.values():
            if isinstance(r, type) and issubclass(r, BaseModel):
                models.append((r, "serialization"))
    keys, defs = models_json_schema(list(dict.fromkeys(models)), ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    ref = {k: v["$ref"] for k, v in keys.items()}
    problem_ref = ref[(M.Problem, "serialization")]
    paths: dict = {}
    for rule, op, action in sorted(ops, key=lambda t: t[0].rule):
        path = _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
        params = []
        for conv, name in _PARAM.findall(rule.rule):
            schema = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} if conv == "int" else {"type": "string"}
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        if op.query is not None:
            q = op.query.model_json_schema()
            for name, prop in q.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in q.get("required", []),
                               "schema": _inline(_strip_null(prop), q.get("$defs", {}))})
        if op.if_match:
            params.append({"name": "If-Match", "in": "header", "required": op.if_match == "required",
                           "description": "The ETag of the report as last read.", "schema": {"type": "string"}})
        if op.method == "POST":
            params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "A retried request with the same key (per token) is done once; the same "
                                          "key with a different request is refused (422).",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                      "pattern": "^[\\x20-\\x7e]+$"}})
        responses: dict = {}
        for status, r in op.responses.items():
            if r == "binary":
                # The file's own type (PDF, an image, an Office document…), as it was checked on upload.
                content = {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}
            elif r == "pdf":
                content = {"application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}}}
            else:
                content = {"application/json": {"schema": {"$ref": ref[(r, "serialization")]}}}
            resp = {"description": "OK" if status < 300 else "", "content": content}
            if op.etag and status < 300:
                resp["headers"] = {"ETag": {"schema": {"type": "string"}}}
            responses[str(status)] = resp
        statuses = {400: "The request could not be understood (bad JSON, a bad cursor or key).",
                    401: "No valid API token (missing, unknown, expired or revoked).",
                    403: "The token's scope, address, or its user's role or clearance does not allow this.",
                    429: "Too many requests: wait for Retry-After seconds."}
        if rule.arguments:
            statuses[404] = "Nothing here, or nothing the token's user may see."
        if op.body is not None or op.query is not None:
            statuses[422] = "The body or the query was refused; `errors` names each field."
        if op.method in ("POST", "PATCH"):
            statuses[409] = "The report's state does not allow this now, or the idempotency key is in use."
            statuses[415] = "The body is not of the media type this operation takes."
            statuses[422] = "The body was refused; `errors` names each field."
            statuses[413] = "The body is larger than the portal accepts."
        if op.if_match:
            statuses[412] = "If-Match does not name the report's current ETag."
        if op.if_match == "required":
            statuses[428] = "If-Match is required."
        if op.responses.get(200) in ("binary", "pdf"):
            statuses[503] = "The file cannot be read at the moment."
        for status in op.extra_statuses:
            statuses.setdefault(status, "")
        for status, text in sorted(statuses.items()):
            responses[str(status)] = _problem(problem_ref, text)
        entry = {"operationId": rule.endpoint.split(".", 1)[1], "summary": op.summary, "tags": [op.tag],
                 "parameters": params, "responses": responses}
        scope = SCOPE_OF.get(action) if isinstance(action, Action) else None
        if scope:
            entry["security"] = [{"bearer": [scope]}]
            entry["description"] = f"Scope: `{scope}`."
        if op.body is not None:
            if op.body_kind == "multipart":
                entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {
                    "schema": {"$ref": ref[(op.body, "validation")]}}}}
            else:
                entry["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": ref[(op.body, "validation")]}}}}
        paths.setdefault(path, {})[op.method.lower()] = entry
    paths["/api/v1/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document.", "security": [],
                                             "tags": ["meta"],
                                             "responses": {"200": {"description": "OK", "content": {
                                                 "application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "TTR Portal API", "version": VERSION,
                 "description": "Filing, following and answering prior reports from a company's own systems, with "
                                "the rules of the web pages. Errors are RFC 9457 problem details; times are RFC "
                                "3339 with an offset."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "An API token issued by the organisation's "
                                                                     "administrator (Organisation → API tokens)."}}},
    }
