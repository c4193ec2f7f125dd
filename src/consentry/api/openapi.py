"""The OpenAPI 3.1 document of the /v3 API, served at ``GET /v3/openapi.json`` without a token.

It describes what a GetResponse client sees: the bearer-protected resources (accounts,
from-fields) with their query parameters, headers and status codes, the GetResponse error
body (SPEC §1.4), and the token, revocation and introspection endpoints (RFC 6749 §3.2,
RFC 7009, RFC 7662). ``tests/fuzz`` runs schemathesis against it, so it must stay exact:
every status a route can answer is listed.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consentry.api.resources import FROM_FIELD_FIELDS
from consentry.http import JSON
from consentry.oauth.errors import CATALOGUE, OAUTH_ERRORS
from consentry.oauth.scopes import SCOPES
from consentry.runtime import Runtime

# The members `fields` may select are the ones the resource module renders.
FROM_FIELD_PROPERTIES = FROM_FIELD_FIELDS

JSON_MEDIA = "application/json"
FORM_MEDIA = "application/x-www-form-urlencoded"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _schemas() -> dict[str, Any]:
    error = {
        "type": "object",
        "description": "GetResponse's error body (SPEC §1.4); `uuid` is also in the server log.",
        "required": [
            "httpStatus",
            "code",
            "codeDescription",
            "message",
            "moreInfo",
            "context",
            "uuid",
        ],
        "properties": {
            "httpStatus": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "integer", "enum": sorted(CATALOGUE)},
            "codeDescription": {"type": "string"},
            "message": {"type": "string"},
            "moreInfo": {"type": "string"},
            "context": {"type": "object"},
            "uuid": {"type": "string"},
            # Present on token, revocation and introspection errors (RFC 6749 §5.2).
            "error": {"type": "string", "enum": sorted(OAUTH_ERRORS)},
            "error_description": {"type": "string"},
        },
    }
    oauth_error = {
        "allOf": [
            _ref("Error"),
            {"type": "object", "required": ["error", "error_description"]},
        ],
        "description": "RFC 6749 §5.2 members beside GetResponse's, so OAuth libraries parse it.",
    }
    from_field = {
        "type": "object",
        "description": "A sender address. `fields` may select a subset; `fromFieldId` is kept.",
        "required": ["fromFieldId"],
        "properties": {
            "fromFieldId": {"type": "string"},
            "href": {"type": "string"},
            "email": {"type": "string"},
            "rewrittenEmail": _nullable("string"),
            "name": {"type": "string"},
            "isActive": {"type": "string", "enum": ["true", "false"]},
            "isDefault": {"type": "string", "enum": ["true", "false"]},
            "createdOn": {"type": "string"},
            "domain": {
                "type": "object",
                "required": ["domain", "href"],
                "properties": {"domain": {"type": "string"}, "href": _nullable("string")},
            },
        },
        "additionalProperties": False,
    }
    account = {
        "type": "object",
        "required": [
            "accountId",
            "firstName",
            "lastName",
            "email",
            "phone",
            "companyName",
            "countryCode",
            "timeZone",
            "href",
        ],
        "properties": {
            "accountId": {"type": "string"},
            "firstName": {"type": "string"},
            "lastName": {"type": "string"},
            "email": {"type": "string"},
            "phone": _nullable("string"),
            "companyName": _nullable("string"),
            "state": _nullable("string"),
            "city": _nullable("string"),
            "street": _nullable("string"),
            "zipCode": _nullable("string"),
            "countryCode": {
                "type": "object",
                "required": ["countryCodeId", "countryCode"],
                "properties": {
                    "countryCodeId": {"type": ["integer", "string", "null"]},
                    "countryCode": {"type": "string"},
                },
            },
            "industryTag": {
                "type": "object",
                "properties": {"industryTagId": {"type": ["integer", "string", "null"]}},
            },
            "numberOfEmployees": {"type": ["integer", "string", "null"]},
            "timeFormat": {"type": "string"},
            "timeZone": {
                "type": "object",
                "required": ["name", "offset"],
                "properties": {"name": {"type": "string"}, "offset": {"type": "string"}},
            },
            "href": {"type": "string"},
        },
    }
    new_from_field = {
        "type": "object",
        "required": ["email", "name"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 320},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
        },
        "additionalProperties": False,
    }
    token = {
        "type": "object",
        "description": "RFC 6749 §5.1 in the seed's exact shape; no refresh_token for "
        "client_credentials.",
        "required": ["access_token", "expires_in", "token_type", "scope"],
        "properties": {
            "access_token": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
            "expires_in": {"type": "integer", "minimum": 0},
            "token_type": {"const": "Bearer"},
            "scope": _nullable("string"),
            "refresh_token": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        },
        "additionalProperties": False,
    }
    token_request = {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["authorization_code", "refresh_token", "client_credentials"],
            },
            "code": {"type": "string"},
            "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string", "pattern": "^[A-Za-z0-9._~-]{43,128}$"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string", "description": "space-separated: " + " ".join(SCOPES)},
        },
    }
    token_ref = {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string"},
            "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
        },
    }
    introspection = {
        "oneOf": [
            {
                "type": "object",
                "required": ["active"],
                "properties": {"active": {"const": False}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["active", "client_id", "exp", "scope", "token_type"],
                "properties": {
                    "active": {"const": True},
                    "client_id": {"type": "string"},
                    "exp": {"type": "integer"},
                    "scope": _nullable("string"),
                    "token_type": {"type": "string"},
                    "sub": {"type": "string"},
                    "iss": {"type": "string"},
                },
            },
        ]
    }
    return {
        "Error": error,
        "OAuthError": oauth_error,
        "FromField": from_field,
        "NewFromField": new_from_field,
        "Account": account,
        "Token": token,
        "TokenRequest": token_request,
        "TokenReference": token_ref,
        "Introspection": introspection,
    }


RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Remaining": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Reset": {
        "description": 'Seconds to the end of the frame, e.g. "432 seconds"',
        "schema": {"type": "string", "pattern": "^[0-9]+ seconds$"},
    },
}
CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
PAGING_HEADERS = {
    name: {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}
    for name in ("TotalCount", "TotalPages", "CurrentPage")
}


def _error(
    description: str, schema: str = "Error", headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {JSON_MEDIA: {"schema": _ref(schema)}},
    }
    if headers:
        out["headers"] = headers
    return out


def _api_errors(*extra: int) -> dict[str, Any]:
    """The answers every bearer-protected operation can give besides its success."""
    out: dict[str, Any] = {
        "401": _error(
            "Missing, unknown, revoked, expired or malformed token; wrong X-Domain (1014)",
            headers=CHALLENGE,
        ),
        "403": _error("The token lacks the scope this operation needs (1014)"),
        "429": _error(
            "Rate limit reached (1015); `context` has currentLimit and timeToReset",
            headers={"Retry-After": {"schema": {"type": "string"}, "required": True}}
            | RATE_HEADERS,
        ),
    }
    for status in extra:
        out[str(status)] = {
            400: _error("Validation error (1000) or bad request headers (1021)"),
            404: _error("Not found, or another account's resource (1013)"),
            409: _error("A from-field with this email already exists (1008)"),
            413: _error("The body is larger than CONSENTRY_MAX_BODY_BYTES"),
        }[status]
    return out


def _ok(description: str, schema: dict[str, Any] | None, **headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "headers": {**RATE_HEADERS, **headers}}
    if schema is not None:
        out["content"] = {JSON_MEDIA: {"schema": schema}}
    return out


X_DOMAIN = {
    "name": "X-Domain",
    "in": "header",
    "required": False,
    "description": "GetResponse MAX: the account's custom domain (bare host). Must be absent "
    "for a standard account.",
    "schema": {"type": "string"},
}
FROM_FIELD_ID = {
    "name": "fromFieldId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": "^[A-Za-z0-9]+$"},
}


def _list_parameters() -> list[dict[str, Any]]:
    def q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }

    return [
        q("query[email]", {"type": "string"}, "Substring of the email, case-insensitive"),
        q("query[name]", {"type": "string"}, "Substring of the name, case-insensitive"),
        q("query[isDefault]", {"type": "string", "enum": ["true", "false"]}, "Only the default"),
        q("sort[createdOn]", {"type": "string", "enum": ["ASC", "DESC", "asc", "desc"]}, "Order"),
        q(
            "fields",
            {
                "type": "string",
                "pattern": "^(" + "|".join(FROM_FIELD_PROPERTIES) + ")"
                "(,(" + "|".join(FROM_FIELD_PROPERTIES) + "))*$",
            },
            "Comma-separated properties to return (fromFieldId is always returned)",
        ),
        q("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}, "Page, from 1"),
        q("perPage", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (100)"),
        X_DOMAIN,
    ]


def _oauth_operation(
    summary: str, request_schema: str, ok: dict[str, Any], operation_id: str
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"clientBasic": []}, {}],
        "parameters": [X_DOMAIN],
        "requestBody": {
            "required": True,
            "content": {FORM_MEDIA: {"schema": _ref(request_schema)}},
        },
        "responses": {
            "200": ok,
            "400": _error("RFC 6749 §5.2 error (code 1000)", "OAuthError"),
            "401": _error(
                "invalid_client (1014): unknown client, wrong secret or no authentication",
                "OAuthError",
                CHALLENGE,
            ),
            "413": _error("The body is larger than CONSENTRY_MAX_BODY_BYTES", "OAuthError"),
        },
    }


def openapi_document(api_url: str) -> dict[str, Any]:
    """The whole document; ``api_url`` is the public URL of the API host."""
    no_store = {"Cache-Control": {"schema": {"const": "no-store"}, "required": True}}
    token_ok = {
        "description": "Tokens issued",
        "headers": no_store,
        "content": {JSON_MEDIA: {"schema": _ref("Token")}},
    }
    revoke_ok = {"description": "Revoked, or the token was unknown (RFC 7009 §2.2)"}
    introspect_ok = {
        "description": "The token's state; inactive to any client but its own or a resource "
        "server",
        "content": {JSON_MEDIA: {"schema": _ref("Introspection")}},
    }
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "consentry /v3 API",
            "version": "3",
            "description": "GetResponse API v3 compatible resources and the OAuth 2.0 token "
            "endpoints of consentry. Errors use GetResponse's body; the token endpoints add "
            "RFC 6749 §5.2's `error` and `error_description`.",
        },
        "servers": [{"url": api_url}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "RFC 6750 §2.1"},
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client_id:client_secret (RFC 6749 §2.3.1); or "
                    "client_id and client_secret in the form body instead",
                },
            },
            "schemas": _schemas(),
        },
        "paths": {
            "/v3/accounts": {
                "get": {
                    "operationId": "getAccount",
                    "summary": "The token owner's account (scope account.read)",
                    "security": bearer,
                    "parameters": [X_DOMAIN],
                    "responses": {"200": _ok("The account", _ref("Account")), **_api_errors()},
                }
            },
            "/v3/from-fields": {
                "get": {
                    "operationId": "listFromFields",
                    "summary": "The account's sender addresses (scope from-fields.read)",
                    "security": bearer,
                    "parameters": _list_parameters(),
                    "responses": {
                        "200": _ok(
                            "One page of from-fields",
                            {"type": "array", "items": _ref("FromField")},
                            **PAGING_HEADERS,
                        ),
                        **_api_errors(400),
                    },
                },
                "post": {
                    "operationId": "createFromField",
                    "summary": "Add a sender address (scope from-fields.write)",
                    "security": bearer,
                    "parameters": [X_DOMAIN],
                    "requestBody": {
                        "required": True,
                        "content": {JSON_MEDIA: {"schema": _ref("NewFromField")}},
                    },
                    "responses": {
                        "201": _ok("Created", _ref("FromField")),
                        **_api_errors(400, 409, 413),
                    },
                },
            },
            "/v3/from-fields/{fromFieldId}": {
                "parameters": [FROM_FIELD_ID],
                "get": {
                    "operationId": "getFromField",
                    "summary": "One sender address (scope from-fields.read)",
                    "security": bearer,
                    "parameters": [X_DOMAIN],
                    "responses": {"200": _ok("The from-field", _ref("FromField")),
                                  **_api_errors(404)},
                },
                "delete": {
                    "operationId": "deleteFromField",
                    "summary": "Remove a sender address; not the default (from-fields.write)",
                    "security": bearer,
                    "parameters": [X_DOMAIN],
                    "responses": {"204": _ok("Deleted", None), **_api_errors(400, 404)},
                },
            },
            "/v3/from-fields/{fromFieldId}/default": {
                "parameters": [FROM_FIELD_ID],
                "post": {
                    "operationId": "makeFromFieldDefault",
                    "summary": "Make this sender address the default (from-fields.write)",
                    "security": bearer,
                    "parameters": [X_DOMAIN],
                    "responses": {"200": _ok("The new default", _ref("FromField")),
                                  **_api_errors(400, 404)},
                },
            },
            "/v3/token": {
                "post": _oauth_operation(
                    "Token endpoint (RFC 6749 §3.2): authorization_code, refresh_token, "
                    "client_credentials",
                    "TokenRequest",
                    token_ok,
                    "token",
                )
            },
            "/v3/token/revoke": {
                "post": _oauth_operation(
                    "Revocation (RFC 7009)", "TokenReference", revoke_ok, "revokeToken"
                )
            },
            "/v3/token/introspect": {
                "post": _oauth_operation(
                    "Introspection (RFC 7662)", "TokenReference", introspect_ok, "introspectToken"
                )
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    return JSON(
        openapi_document(rt.settings.api_url), headers={"Cache-Control": "public, max-age=300"}
    )
