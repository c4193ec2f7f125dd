"""A copy of the database file holds no usable secret (SPEC §1.2: hashes only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from oauth_support import PASSWORD, Codes, signup


def raw_database(server: Any) -> bytes:
    """The SQLite file and its WAL as bytes (or, on PostgreSQL, every row of every table)."""
    if hasattr(server, "dump_bytes"):
        return bytes(server.dump_bytes())
    path = Path(server.db_path)
    data = path.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


def test_database_files_hold_no_plaintext_code_token_secret_or_password(server: Any) -> None:
    client = server.new_client(owner=signup(server), name="Secretive")
    codes = Codes(server)
    try:
        code = codes(client)
        issued = server.token(client, grant_type="authorization_code", code=code).json()
        rotated = server.token(
            client, grant_type="refresh_token", refresh_token=issued["refresh_token"]
        ).json()
        # A retry inside the grace window stores the pair for re-delivery: encrypted only.
        retried = server.token(
            client, grant_type="refresh_token", refresh_token=issued["refresh_token"]
        ).json()
        assert retried["access_token"] == rotated["access_token"]
        cc = server.token(client, grant_type="client_credentials").json()
        httpx.post(
            f"{server.url}/v3/token/introspect",
            auth=client.auth,
            data={"token": cc["access_token"]},
        )
    finally:
        codes.close()
    secrets = {
        "code": code,
        "access token": issued["access_token"],
        "refresh token": issued["refresh_token"],
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "client_credentials token": cc["access_token"],
        "client secret": client.client_secret,
        "password": PASSWORD,
    }
    data = raw_database(server)
    assert client.client_id.encode() in data  # the check reads the right, current files
    leaked = [name for name, value in secrets.items() if value.encode() in data]
    assert leaked == []
    for name, value in secrets.items():
        assert value.upper().encode() not in data, name
