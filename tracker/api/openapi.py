"""``GET /v1/openapi.json``: the OpenAPI 3.0 document of the authenticated API.

Written by hand rather than generated from the handlers, because the handlers
validate by hand (to give row-by-row error messages) and there is no model
layer to generate it from; a test checks every ``/v1`` route appears here, and
schemathesis fuzzes the service from this document.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker import __version__

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
_CHANNEL = {"type": "string", "enum": ["email", "push", "line"]}
_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_DATE = {"type": "string", "format": "date", "example": "2026-05-01"}
_TRACKING_DOMAIN = {
    "type": "string", "nullable": True, "example": "https://click.brand.example",
    "description": "origin (no path) of this campaign's pixel, click and unsubscribe URLs; "
                   "null: TRACKER_PUBLIC_URL",
}
_DELIVERY_ID = {"type": "string", "pattern": "^[0-9]{1,19}$", "example": "1000"}


def _errors(*codes: int) -> dict[str, Any]:
    described = {
        400: "The body is not valid JSON or not UTF-8",
        401: "Missing or wrong API key",
        404: "Not found",
        413: "Body too large",
        422: "The request is well-formed but invalid; detail says what and how to fix it",
    }
    return {
        str(code): {"description": described[code],
                    "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"200": {"description": description, "content": content}}


_MESSAGE = {
    "type": "object",
    "required": ["campaign_id", "schedule_task_id", "channel"],
    "properties": {
        "campaign_id": _ID,
        "schedule_task_id": _ID,
        "user_id": _ID,
        "channel": _CHANNEL,
        "is_test": {"type": "boolean"},
        "html": {"type": "string"},
        "text": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "recipients": {
            "type": "array", "maxItems": 10000,
            "items": {"type": "object", "required": ["user_id"],
                      "properties": {"user_id": _ID, "html": {"type": "string"},
                                     "text": {"type": "string"}}},
        },
    },
}
_OUTCOME = {
    "type": "object",
    "required": ["delivery_id", "campaign_id", "schedule_task_id", "user_id", "channel",
                 "status", "sent_at"],
    "properties": {
        "delivery_id": _DELIVERY_ID,
        "campaign_id": _ID,
        "schedule_task_id": _ID,
        "user_id": _ID,
        "channel": _CHANNEL,
        "status": {"type": "string", "enum": ["delivered", "bounced", "soft_bounced", "failed"]},
        "error_code": {"type": "string"},
        "error_message": {"type": "string"},
        "sent_at": {"type": "string", "format": "date-time"},
        "is_test": {"type": "boolean"},
        "occurred_at": {"type": "string", "format": "date-time",
                        "description": "when the outcome's event happened; default: arrival"},
    },
}
_CONVERSION = {
    "type": "object",
    "required": ["user_id", "name", "ts"],
    "properties": {
        "user_id": _ID,
        "name": {"type": "string", "minLength": 1},
        "ts": {"type": "string", "format": "date-time"},
        "value": {"type": "number"},
    },
}
_REPORT_FILTERS = [
    {"name": "from", "in": "query", "required": True, "schema": _DATE},
    {"name": "to", "in": "query", "required": True, "schema": _DATE},
    {"name": "schedule_task_id", "in": "query", "schema": _ID},
    {"name": "channel", "in": "query", "schema": _CHANNEL},
    {"name": "include_bots", "in": "query", "schema": {"type": "boolean"}},
]


def document() -> dict[str, Any]:
    """The OpenAPI document (paths relative to the ``/v1`` server)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tracker management and report API",
            "version": __version__,
            "description": "Every path needs 'Authorization: Bearer <TRACKER_API_KEY>'.",
        },
        "servers": [{"url": "/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/campaigns/{campaign_id}": {
                "parameters": [{"name": "campaign_id", "in": "path", "required": True,
                                "schema": _ID}],
                "put": {
                    "summary": "Create or update a campaign",
                    "requestBody": _json_body({
                        "type": "object",
                        "properties": {"name": {"type": "string", "maxLength": 1000},
                                       "channel": _CHANNEL,
                                       "status": {"type": "string", "maxLength": 50},
                                       "settings": {"type": "object", "properties": {
                                           "tracking_domain": _TRACKING_DOMAIN}}},
                    }),
                    "responses": {**_ok("The campaign"), **_errors(400, 401, 413, 422)},
                },
                "get": {
                    "summary": "Read a campaign",
                    "responses": {**_ok("The campaign"), **_errors(401, 404)},
                },
            },
            "/tracking-domains": {"get": {
                "summary": "Tracking domains in use, with the campaigns using each",
                "responses": {**_ok("[{domain, campaigns}]", {
                    "type": "array",
                    "items": {"type": "object", "required": ["domain", "campaigns"],
                              "properties": {"domain": {"type": "string"},
                                             "campaigns": {"type": "array",
                                                           "items": {"type": "string"}}}},
                }), **_errors(401)},
            }},
            "/messages": {"post": {
                "summary": "Rewrite a message (or one per recipient) for tracking",
                "requestBody": _json_body(_MESSAGE),
                "responses": {**_ok("The rewritten message(s)"), **_errors(400, 401, 413, 422)},
            }},
            "/outcomes": {"post": {
                "summary": "Delivery outcomes (JSON array or NDJSON)",
                "requestBody": _json_body({"type": "array", "items": _OUTCOME}),
                "responses": {**_ok("Counts of stored rows"), **_errors(400, 401, 413, 422)},
            }},
            "/ses": {"post": {
                "summary": "Amazon SES notification, raw or in an SNS envelope",
                "requestBody": _json_body({"type": "object"}),
                "responses": {**_ok("What was done with it"), **_errors(400, 401, 413, 422)},
            }},
            "/conversions": {"post": {
                "summary": "Conversions, credited to the last click within the window",
                "requestBody": _json_body({"type": "array", "items": _CONVERSION}),
                "responses": {**_ok("Counts credited and not"), **_errors(400, 401, 413, 422)},
            }},
            "/suppressions/{user_id}": {"get": {
                "summary": "Whether a user is suppressed, and why",
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True, "schema": _ID},
                    {"name": "channel", "in": "query", "schema": _CHANNEL},
                ],
                "responses": {**_ok("{suppressed, reason, since}"), **_errors(401, 422)},
            }},
            "/reports/campaigns/{campaign_id}": {"get": {
                "summary": "Campaign report",
                "parameters": [{"name": "campaign_id", "in": "path", "required": True,
                                "schema": _ID}, *_REPORT_FILTERS],
                "responses": {**_ok("The campaign report"), **_errors(401, 404, 422)},
            }},
            "/reports/project": {"get": {
                "summary": "Project report",
                "parameters": [*_REPORT_FILTERS,
                               {"name": "campaign_id", "in": "query", "schema": _ID},
                               {"name": "format", "in": "query",
                                "schema": {"type": "string", "enum": ["json", "csv"]}}],
                "responses": {**_ok("The project report"), **_errors(401, 404, 422)},
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {**_ok("OpenAPI 3.0 document"), **_errors(401)},
            }},
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())


routes = [Route("/openapi.json", openapi, methods=["GET"])]
