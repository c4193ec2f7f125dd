"""Where a provider's endpoints live: GetResponse, GetResponse MAX, consentry."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

_MAX_API_TLDS = ("com", "pl")
_GETRESPONSE_APP = "https://app.getresponse.com"
_GETRESPONSE_API = "https://api.getresponse.com/v3"


def _bare_host(domain: str) -> str:
    """Reduce ``https://Example.com/`` or ``example.com`` to ``example.com``."""
    text = domain.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.rstrip("/").lower()
    if not text or any(c in text for c in "/?#@ \t\r\n"):
        raise ValueError(f"not a bare host name: {domain!r}")
    return text


@dataclass(frozen=True)
class Provider:
    """The endpoints of one OAuth 2.0 authorization server and its API.

    Use a preset, or build one by hand for any other server. ``pkce`` says
    whether to send a PKCE S256 challenge (RFC 7636); ``issuer`` is checked
    against the callback's ``iss`` (RFC 9207) when both are known; ``x_domain``
    is sent as the ``X-Domain`` header on token and API requests (GetResponse MAX).

    Example::

        Provider.getresponse()
        Provider.getresponse_max("news.example.com", tld="pl")
        Provider.consentry("https://auth.example.com", "https://api.example.com")
    """

    name: str
    authorize_url: str
    token_url: str
    api_url: str
    revoke_url: str | None = None
    issuer: str | None = None
    pkce: bool = False
    x_domain: str | None = None

    @classmethod
    def getresponse(cls, *, pkce: bool = False) -> Provider:
        """GetResponse (standard accounts): app.getresponse.com and api.getresponse.com.

        GetResponse documents no PKCE and no revocation endpoint, so both are off.
        """
        return cls(
            name="getresponse",
            authorize_url=f"{_GETRESPONSE_APP}/oauth2_authorize.html",
            token_url=f"{_GETRESPONSE_API}/token",
            api_url=_GETRESPONSE_API,
            pkce=pkce,
        )

    @classmethod
    def getresponse_max(cls, domain: str, tld: str = "com", *, pkce: bool = False) -> Provider:
        """GetResponse MAX: authorize on the account's custom ``domain``, call api3.getresponse360.

        ``tld`` picks the API host: ``"com"`` (api3.getresponse360.com) or ``"pl"``
        (api3.getresponse360.pl). Every token and API request carries
        ``X-Domain: <domain>``.

        Example::

            Provider.getresponse_max("https://news.example.com").x_domain  # 'news.example.com'
        """
        host = _bare_host(domain)
        if tld not in _MAX_API_TLDS:
            raise ValueError(f"tld must be one of {_MAX_API_TLDS}, not {tld!r}")
        api = f"https://api3.getresponse360.{tld}/v3"
        return cls(
            name="getresponse-max",
            authorize_url=f"https://{host}/oauth2_authorize.html",
            token_url=f"{api}/token",
            api_url=api,
            pkce=pkce,
            x_domain=host,
        )

    @classmethod
    def consentry(
        cls,
        app_url: str,
        api_url: str | None = None,
        *,
        issuer: str | None = None,
        x_domain: str | None = None,
        pkce: bool = True,
    ) -> Provider:
        """A consentry server: pages on ``app_url``, ``/v3`` on ``api_url`` (default: ``app_url``).

        The issuer defaults to ``app_url``, where consentry serves its RFC 8414
        metadata (RFC 8414 §3.3: the issuer is the URL the metadata lives under);
        pass ``issuer`` if the server was configured with another one. Give
        ``x_domain`` for a MAX account hosted on consentry.

        Example::

            Provider.consentry("http://localhost:8000").token_url
            # 'http://localhost:8000/v3/token'
        """
        app = app_url.rstrip("/")
        api = (api_url or app_url).rstrip("/")
        if api.endswith("/v3"):
            api = api[: -len("/v3")]
        return cls(
            name="consentry",
            authorize_url=f"{app}/oauth2_authorize.html",
            token_url=f"{api}/v3/token",
            api_url=f"{api}/v3",
            revoke_url=f"{api}/v3/token/revoke",
            issuer=(issuer or app).rstrip("/"),
            pkce=pkce,
            x_domain=None if x_domain is None else _bare_host(x_domain),
        )
