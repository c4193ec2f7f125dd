"""consentry's OAuth 2.0 client toolkit for GetResponse, GetResponse MAX and consentry.

A handful of names; everything else is private. One sans-IO core builds every
request and interprets every response; :class:`Client` and :class:`AsyncClient`
are its synchronous and asynchronous drivers.

Example::

    from consentry.client import Client, FileTokenStore, Provider

    client = Client(Provider.getresponse(), CLIENT_ID, CLIENT_SECRET,
                    redirect_uri="https://mytemplatemaker.example.com/gr_callback",
                    store=FileTokenStore("tokens.json"))

    auth = client.start()                     # 1. keep auth.to_dict(), redirect to auth.url
    client.handle_callback(query, auth, key=user_id)   # 2. on the callback
    client.get("/from-fields", key=user_id).data       # 3. call the API
    client.disconnect(key=user_id)                     # 4. "Disconnect"
"""

from ._async import AsyncClient
from ._errors import (
    AccessDenied,
    APIError,
    AuthorizationError,
    ClientError,
    RateLimited,
    ReauthorizationRequired,
    StateMismatch,
)
from ._models import APIResponse, AuthorizationRequest, TokenSet
from ._provider import Provider
from ._stores import FileTokenStore, MemoryTokenStore, SQLTokenStore, TokenStore
from ._sync import Client

__all__ = [
    "APIError",
    "APIResponse",
    "AccessDenied",
    "AsyncClient",
    "AuthorizationError",
    "AuthorizationRequest",
    "Client",
    "ClientError",
    "FileTokenStore",
    "MemoryTokenStore",
    "Provider",
    "RateLimited",
    "ReauthorizationRequired",
    "SQLTokenStore",
    "StateMismatch",
    "TokenSet",
    "TokenStore",
]
