"""Authorization server metadata ``/.well-known/oauth-authorization-server`` (RFC 8414)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consentry.http import JSON
from consentry.oauth.scopes import SCOPES
from consentry.runtime import Runtime


def server_metadata(rt: Runtime) -> dict[str, Any]:
    s = rt.settings
    auth_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": s.issuer,  # RFC 8414 §2
        "authorization_endpoint": f"{s.app_url}/oauth2_authorize.html",
        "token_endpoint": f"{s.api_url}/v3/token",
        "revocation_endpoint": f"{s.api_url}/v3/token/revoke",
        "introspection_endpoint": f"{s.api_url}/v3/token/introspect",
        "scopes_supported": sorted(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],  # RFC 7636; plain refused (RFC 9700)
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 §3
    }


async def metadata_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    return JSON(server_metadata(rt), headers={"Cache-Control": "public, max-age=300"})
