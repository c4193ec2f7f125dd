"""The schema, as SQLAlchemy Core tables. Portable: the same tables run on SQLite and PostgreSQL.

Times are integer Unix seconds (UTC): comparable in SQL on both databases, no time-zone
surprises. Every token-like value (codes, tokens, client secrets, session ids) is stored only
as its keyed hash (``*_hash``, hex HMAC-SHA256), with a unique index as its lookup key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

HASH = String(64)  # hex HMAC-SHA256

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(32), nullable=False, unique=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("phone", String(64), nullable=True),
    Column("company_name", String(200), nullable=True),
    Column("country_code", String(2), nullable=False, server_default="PL"),
    Column("time_zone", String(64), nullable=False, server_default="Europe/Warsaw"),
    # GetResponse MAX: the account's custom domain (bare host), or NULL for a standard account.
    Column("max_domain", String(253), nullable=True, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

from_fields = Table(
    "from_fields",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("user_id", "email", name="uq_from_fields_user_email"),
    Index("ix_from_fields_user_created", "user_id", "created_at"),
)

clients = Table(
    "clients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", HASH, nullable=False),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("logo", LargeBinary, nullable=True),
    Column("logo_mime", String(32), nullable=True),
    Column("redirect_uris", Text, nullable=False),  # JSON list of exact strings
    Column("is_resource_server", Boolean, nullable=False, server_default="0"),
    Column("allow_implicit", Boolean, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_clients_owner", "owner_id"),
)

# A grant is one authorization decision of a user for a client; every code, access token
# and refresh token descends from one, so revoking it ends the whole family.
grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("scope", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_grants_user_client", "user_id", "client_pk"),
    Index("ix_grants_client", "client_pk"),
)

# Remembered consent: the user allowed this client this scope (SPEC §1.1).
consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("scope", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("user_id", "client_pk", name="uq_consents_user_client"),
    Index("ix_consents_client", "client_pk"),
)

codes = Table(
    "codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code_hash", HASH, nullable=False, unique=True),
    Column("grant_id", Integer, ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_sent", Boolean, nullable=False),
    Column("scope", Text, nullable=True),
    Column("code_challenge", String(128), nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("spent_at", BigInteger, nullable=True),
    Index("ix_codes_expires", "expires_at"),
    Index("ix_codes_grant", "grant_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", HASH, nullable=False, unique=True),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("grant_id", Integer, ForeignKey("grants.id", ondelete="CASCADE"), nullable=True),
    Column("scope", Text, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_access_tokens_grant", "grant_id"),
    Index("ix_access_tokens_client", "client_pk"),
    Index("ix_access_tokens_expires", "expires_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", HASH, nullable=False, unique=True),
    Column("grant_id", Integer, ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("scope", Text, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("spent_at", BigInteger, nullable=True),
    # No revoked_at: a refresh token is live exactly while its grant is.
    # The pair issued when this token was rotated, encrypted under a key derived from this
    # token's plaintext (which the database does not hold): lets a retry inside the grace
    # window get the same pair back without storing usable tokens.
    Column("retry_blob", LargeBinary, nullable=True),
    Column("successor_hash", HASH, nullable=True),
    Index("ix_refresh_tokens_grant", "grant_id"),
    Index("ix_refresh_tokens_expires", "expires_at"),
)

# Pending authorization requests, kept server-side (SPEC §1.1): the login page and the
# consent form refer to them by an unguessable id, never by a free-form URL.
auth_requests = Table(
    "auth_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("request_hash", HASH, nullable=False, unique=True),
    Column("client_pk", Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("params", Text, nullable=False),  # JSON of the validated authorize parameters
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Index("ix_auth_requests_expires", "expires_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_hash", HASH, nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("pending_request", HASH, nullable=True),  # request_hash of an auth_requests row
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_sessions_expires", "expires_at"),
    Index("ix_sessions_user", "user_id"),
)
