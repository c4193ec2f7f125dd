"""Start-up gates (RFC 9700): `serve` refuses settings that would quietly weaken security.

Each gate has a name; listing it in ``CONSENTRY_ALLOW_INSECURE`` (comma-separated) turns
its refusal into a logged warning, for a test rig or a deliberate exception.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from consentry.config import Settings

log = logging.getLogger("consentry.gates")

MAX_CODE_TTL = 600  # RFC 6749 §4.1.2: "a maximum authorization code lifetime of 10 minutes"
MAX_REFRESH_GRACE = 60


@dataclass(frozen=True)
class Finding:
    gate: str
    message: str


class InsecureSettings(Exception):
    """Settings refused at start; the message lists each finding and its override."""


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def findings(settings: Settings, implicit_clients: int = 0) -> list[Finding]:
    out: list[Finding] = []
    for name, url in (("issuer", settings.issuer), ("app_url", settings.app_url),
                      ("api_url", settings.api_url)):
        parts = urlsplit(url)
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            out.append(
                Finding(
                    "http_issuer",
                    f"{name} {url!r} is not https on a non-loopback host: codes, tokens and "
                    "passwords would cross the network in clear text (RFC 9700 §2, RFC 6749 §3.1)",
                )
            )
    if settings.code_ttl > MAX_CODE_TTL:
        out.append(
            Finding(
                "code_ttl",
                f"CONSENTRY_CODE_TTL={settings.code_ttl} is over {MAX_CODE_TTL} s "
                "(RFC 6749 §4.1.2 recommends at most 10 minutes)",
            )
        )
    if settings.refresh_grace > MAX_REFRESH_GRACE:
        out.append(
            Finding(
                "refresh_grace",
                f"CONSENTRY_REFRESH_GRACE={settings.refresh_grace} is over {MAX_REFRESH_GRACE} s: "
                "a stolen rotated refresh token stays replayable that long (RFC 9700 §4.14.2)",
            )
        )
    if implicit_clients:
        out.append(
            Finding(
                "implicit_grant",
                f"{implicit_clients} application(s) have the implicit grant enabled; RFC 9700 "
                "§2.1.2 says it should not be used (tokens in URLs and browser history)",
            )
        )
    return out


def check(settings: Settings, allowed: set[str], implicit_clients: int = 0) -> None:
    """Raise :class:`InsecureSettings` for every finding not explicitly allowed."""
    refused = []
    for f in findings(settings, implicit_clients):
        if f.gate in allowed:
            log.warning("insecure setting allowed by CONSENTRY_ALLOW_INSECURE=%s: %s",
                        f.gate, f.message)
        elif f.gate == "implicit_grant":
            log.warning("%s", f.message)  # a per-application choice: warn, don't refuse
        else:
            refused.append(f)
    if refused:
        lines = [f"- {f.message} [override: CONSENTRY_ALLOW_INSECURE={f.gate}]" for f in refused]
        raise InsecureSettings("refusing to start with insecure settings:\n" + "\n".join(lines))
