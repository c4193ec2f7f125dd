"""URL map of the /v3 resource API."""

from __future__ import annotations

from starlette.routing import Route

from consentry.api import resources
from consentry.api.openapi import openapi_endpoint

routes = [
    Route("/v3/openapi.json", openapi_endpoint, methods=["GET"]),
    Route("/v3/accounts", resources.get_account, methods=["GET"]),
    Route("/v3/from-fields", resources.list_from_fields, methods=["GET"]),
    Route("/v3/from-fields", resources.create_from_field, methods=["POST"]),
    Route("/v3/from-fields/{from_field_id}", resources.get_from_field, methods=["GET"]),
    Route("/v3/from-fields/{from_field_id}", resources.delete_from_field, methods=["DELETE"]),
    Route("/v3/from-fields/{from_field_id}/default", resources.make_default, methods=["POST"]),
]
