"""The API for system-to-system filing (/api/v1, issue 19): the same services, policy and
request path as the web pages, with JSON in and out and an OpenAPI document generated from
the code (portal.api.openapi)."""
