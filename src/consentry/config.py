"""Every setting of consentry, its default and its ``CONSENTRY_`` variable, in one place.

A setting is read from the environment variable named in its ``env`` (always
``CONSENTRY_`` + the upper-case field name). The README's configuration table is
generated from :data:`SETTINGS_DOC` so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "CONSENTRY_"


class ConfigError(ValueError):
    """A setting has a value consentry cannot use; the message names the variable."""


def _default_db_url() -> str:
    return "sqlite:///" + str(Path.cwd() / "consentry.db")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :meth:`from_env`."""

    database_url: str = field(
        default_factory=_default_db_url,
        metadata={"doc": "SQLAlchemy URL: sqlite:////abs/path.db or postgresql://user@host/db"},
    )
    secret_key: str = field(
        default="",
        metadata={
            "doc": "Key for token hashes, CSRF and sessions. Unset: generated once and kept "
            "next to the SQLite database (0600)."
        },
    )
    issuer: str = field(
        default="", metadata={"doc": "Issuer identifier (RFC 8414, RFC 9207); default APP_URL"}
    )
    app_url: str = field(
        default="", metadata={"doc": "Public URL of the pages host; default http://HOST:PORT"}
    )
    api_url: str = field(
        default="", metadata={"doc": "Public URL of the API host (/v3); default APP_URL"}
    )
    docs_url: str = field(
        default="https://apidocs.getresponse.com/en/v3",
        metadata={"doc": "Base of `moreInfo` links in error bodies"},
    )
    access_token_ttl: int = field(default=3600, metadata={"doc": "Access token lifetime, s"})
    client_credentials_ttl: int = field(
        default=86400, metadata={"doc": "client_credentials token lifetime, s"}
    )
    refresh_token_ttl: int = field(
        default=30 * 86400, metadata={"doc": "Refresh token lifetime, s"}
    )
    code_ttl: int = field(default=600, metadata={"doc": "Authorization code lifetime, s"})
    refresh_grace: int = field(
        default=10,
        metadata={"doc": "Window in which a retried refresh gets the same pair; 0 = off"},
    )
    session_ttl: int = field(default=14 * 86400, metadata={"doc": "Login session lifetime, s"})
    remember_consent: bool = field(
        default=True, metadata={"doc": "Skip the consent page when the same access was granted"}
    )
    redis_url: str = field(default="", metadata={"doc": "Redis URL for shared rate limits"})
    rate_limit_per_frame: int = field(
        default=30000, metadata={"doc": "API calls per account per frame"}
    )
    rate_limit_frame: int = field(default=600, metadata={"doc": "Rate-limit frame length, s"})
    rate_limit_per_second: int = field(
        default=80, metadata={"doc": "API calls per account per second"}
    )
    rate_limit_concurrent: int = field(
        default=10, metadata={"doc": "API calls per account at once"}
    )
    login_limit_per_account: int = field(
        default=10, metadata={"doc": "Failed logins per account per 10 minutes"}
    )
    login_limit_per_address: int = field(
        default=100, metadata={"doc": "Failed logins per client address per 10 minutes"}
    )
    token_rate_limit_per_second: int = field(
        default=200, metadata={"doc": "Token-endpoint requests per client per second; 0 = off"}
    )
    client_auth_failures: int = field(
        default=20,
        metadata={"doc": "Failed client authentications per client id and address per 10 minutes"},
    )
    max_body_bytes: int = field(
        default=65536, metadata={"doc": "Largest accepted form/JSON body (logo uploads: 640 KiB)"}
    )
    purge_interval: int = field(
        default=3600, metadata={"doc": "Seconds between background purges of expired rows; 0 = off"}
    )
    purge_batch: int = field(default=1000, metadata={"doc": "Rows per purge transaction"})
    db_pool_size: int = field(
        default=20,
        metadata={
            "doc": "PostgreSQL connections per process and pool, hot path and the rest "
            "(opened when needed, then kept)"
        },
    )
    # Overflow connections are closed as soon as they are returned while the pool is full,
    # so a steady load above the pool size opens and closes PostgreSQL connections all the
    # time (a backend and a prepared-statement cache each): 10 + 10 cost a third more CPU
    # per token request than 20 + 0 at 32 requests in flight (docs/performance.md).
    db_max_overflow: int = field(
        default=0,
        metadata={"doc": "Extra PostgreSQL connections for bursts (closed again when returned)"},
    )
    db_pool_timeout: int = field(
        default=5, metadata={"doc": "Seconds to wait for a pooled connection before a 503"}
    )
    allow_insecure: str = field(
        default="",
        metadata={
            "doc": "Comma-separated start-up gates to turn into warnings: http_issuer, "
            "code_ttl, refresh_grace"
        },
    )
    host: str = field(default="127.0.0.1", metadata={"doc": "Address `serve` binds to"})
    port: int = field(default=8000, metadata={"doc": "Port `serve` listens on"})
    log_level: str = field(default="info", metadata={"doc": "Log level"})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read every ``CONSENTRY_*`` variable; ``overrides`` (e.g. CLI flags) win."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = PREFIX + f.name.upper()
            if name not in env:
                continue
            raw = env[name]
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be an integer number, got {raw!r}") from None
                if values[f.name] < 0:  # type: ignore[operator]
                    raise ConfigError(f"{name} must not be negative")
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        return settings.resolved()

    def resolved(self) -> Settings:
        """Fill the URL defaults from each other and load or create the secret key."""
        app_url = (self.app_url or f"http://{_url_host(self.host)}:{self.port}").rstrip("/")
        api_url = (self.api_url or app_url).rstrip("/")
        issuer = (self.issuer or app_url).rstrip("/")
        secret_key = self.secret_key or load_or_create_secret(self.database_url)
        return dataclasses.replace(
            self, app_url=app_url, api_url=api_url, issuer=issuer, secret_key=secret_key
        )

    @property
    def allowed_insecure(self) -> set[str]:
        return {g.strip() for g in self.allow_insecure.split(",") if g.strip()}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.app_url.startswith("https://")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - only used to build a display URL
        return "127.0.0.1"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def sqlite_path(database_url: str) -> Path | None:
    """The file behind an ``sqlite:///`` URL, or None for memory/other databases."""
    if not database_url.startswith("sqlite"):
        return None
    path = urlsplit(database_url).path
    # sqlite:////abs/path -> path '//abs/path'; sqlite:///rel -> '/rel'
    if path.startswith("//"):
        path = path[1:]
    elif path.startswith("/"):
        path = path[1:]
    if not path or path == ":memory:":
        return None
    return Path(path)


def load_or_create_secret(database_url: str) -> str:
    """Keep a generated secret key beside the SQLite file so restarts keep tokens valid.

    For a server database (PostgreSQL) there is no file to sit beside: the key must be
    given in ``CONSENTRY_SECRET_KEY`` so that every node computes the same hashes.
    """
    db_path = sqlite_path(database_url)
    if db_path is None:
        if database_url.startswith("sqlite"):
            return secrets.token_hex(32)
        raise ConfigError(
            "CONSENTRY_SECRET_KEY must be set when the database is not an SQLite file: "
            "every node must share the same key"
        )
    key_path = db_path.with_name(db_path.name + ".secret")
    try:
        return key_path.read_text().strip()
    except FileNotFoundError:
        pass
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:  # another process won the race; use its key
        return key_path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def settings_doc() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for the README table."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = str(f.default)
        else:
            default = "consentry.db in the working directory"
        rows.append((PREFIX + f.name.upper(), default, f.metadata.get("doc", "")))
    return rows
