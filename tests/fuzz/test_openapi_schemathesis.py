"""Schemathesis against the published OpenAPI document of /v3 on a running server.

Every operation is called with generated parameters, headers and bodies, valid ones and
invalid ones (a valid bearer token or valid client credentials attached); no answer may be
a 5xx, and every answer must match the document: status code, content type, headers and
body schema.

Schemathesis's pytest plugin is not used (it does not support pytest 9 yet): each operation
gets a plain hypothesis test built from ``APIOperation.as_strategy``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attacks.support import signup, token_pair
from tests.conftest import Server
from tests.fuzz.conftest import EXAMPLES_PER_OPERATION

# A test dependency (pip install schemathesis); skipped with this reason where it is missing.
schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Set by the HTTP client from the request itself, never by the caller.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection"}
OPERATIONS = {
    "GET /v3/accounts",
    "GET /v3/from-fields",
    "POST /v3/from-fields",
    "GET /v3/from-fields/{fromFieldId}",
    "DELETE /v3/from-fields/{fromFieldId}",
    "POST /v3/from-fields/{fromFieldId}/default",
    "POST /v3/token",
    "POST /v3/token/revoke",
    "POST /v3/token/introspect",
}


@pytest.fixture(scope="module")
def credentials(fuzz_server: Server) -> dict[str, str]:
    app = fuzz_server.new_client(name="Schemathesis")
    _email, b = signup(fuzz_server, "Schema Fuzzer")
    token = token_pair(fuzz_server, app, b)["access_token"]  # whole account: every scope
    b.close()
    basic = base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()
    return {"bearer": f"Bearer {token}", "basic": f"Basic {basic}"}


def fuzz(op: Any, auth: str) -> None:
    """Valid and invalid calls of one operation, each answer checked against the document."""

    @given(case=st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                          op.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        if case.headers:
            # Negative cases add headers of any name; one that frames the message itself
            # (a Content-Length "epQAte&8") makes it no HTTP request at all, which the HTTP
            # layer refuses (400) before any operation runs: outside what the document
            # describes. The rest of the case is still sent.
            case.headers = {
                k: v for k, v in case.headers.items() if k.lower() not in FRAMING_HEADERS
            }
        case.call_and_validate(headers={"Authorization": auth}, checks=CHECKS)

    run()


def test_api_answers_match_the_openapi_document(
    fuzz_server: Server, credentials: dict[str, str]
) -> None:
    url = f"{fuzz_server.url}/v3/openapi.json"
    assert httpx.get(url).status_code == 200  # published without a token
    schema = schemathesis.openapi.from_url(url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == OPERATIONS
    failures: dict[str, BaseException] = {}
    for op in operations:
        auth = credentials["basic"] if op.path.startswith("/v3/token") else credentials["bearer"]
        try:
            fuzz(op, auth)
        except Exception as exc:  # keep going: report every operation that fails
            failures[op.label] = exc
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
