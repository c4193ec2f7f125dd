"""The file token store survives a crash between a refresh and the save of its result.

A child process refreshes through the toolkit and dies (``os._exit``, no cleanup) at the
worst moments: after the server rotated the tokens but before the store was written, and
in the middle of the store's write (temporary file written, not yet renamed). The file
must still parse, still hold the previous pair, and the grant must still be usable -- the
server's refresh grace window returns the same new pair to a retried refresh.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from toolkit_support import CALLBACK, token_log_lines

from consentry.client import Client, FileTokenStore, Provider

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from consentry.client import Client, FileTokenStore, Provider

    url, client_id, secret, path, key, where = sys.argv[1:]

    class CrashBeforeSave(FileTokenStore):
        def save(self, key, tokens):
            os._exit(17)  # the process dies with the new tokens only in memory

    if where == "before-save":
        store = CrashBeforeSave(path)
    else:
        store = FileTokenStore(path)
        os.replace = lambda *a, **k: os._exit(18)  # dies after the temp file, before the rename
    client = Client(Provider.consentry(url), client_id, secret, store=store)
    client.refresh(key=key)
    sys.exit(0)  # not reached
    """
)


@pytest.mark.parametrize(("where", "status"), [("before-save", 17), ("mid-write", 18)])
def test_file_store_survives_a_crash_between_refresh_and_save(
    where: str,
    status: int,
    expiring_server: Any,
    toolkit: Callable[..., Any],
    tmp_path: Path,
) -> None:
    server = expiring_server
    path = tmp_path / "tokens.json"
    tk = toolkit(server, store=FileTokenStore(path))
    tk.connect_sync("user-1")
    tk.sync.store.save("other", tk.sync.store.load("user-1"))  # another key in the same file
    before = path.read_bytes()
    logged = token_log_lines(server)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, server.url, tk.app.client_id, tk.app.client_secret,
         str(path), "user-1", where],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == status, child.stderr
    assert token_log_lines(server) > logged  # the server did rotate the tokens

    # The file is intact, private, and still holds the previous pair.
    assert path.read_bytes() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert set(json.loads(path.read_text())["tokens"]) == {"user-1", "other"}

    # A restarted app picks up from the file: its refresh with the stored refresh token is a
    # retry within the server's grace window and gets the rotated pair; the grant lives on.
    with Client(
        Provider.consentry(server.url), tk.app.client_id, tk.app.client_secret,
        redirect_uri=CALLBACK, store=FileTokenStore(path),
    ) as restarted:  # fmt: skip
        old = restarted.store.load("user-1")
        fresh = restarted.refresh(key="user-1")
        assert old is not None and fresh.refresh_token != old.refresh_token
        assert restarted.get("/accounts", key="user-1").status_code == 200
        assert restarted.store.load("user-1") == fresh
        # and the rotation after that works as usual
        assert restarted.refresh(key="user-1").refresh_token != fresh.refresh_token
