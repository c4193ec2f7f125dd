"""Token stores: where the client keeps each key's :class:`TokenSet`.

A store is any object with ``load``, ``save`` and ``delete`` (see
:class:`TokenStore`). ``save`` must replace the key's tokens atomically: after
it returns, a crash must leave either the old or the new set, never half of one.
The stores are synchronous; :class:`AsyncClient` calls them in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ._models import TokenSet

_FILE_FORMAT = 1


@runtime_checkable
class TokenStore(Protocol):
    """The interface of a token store; implement it to keep tokens elsewhere.

    ``key`` is chosen by the application (for example its own user id).

    Example::

        class RedisTokenStore:
            def load(self, key: str) -> TokenSet | None: ...
            def save(self, key: str, tokens: TokenSet) -> None: ...
            def delete(self, key: str) -> None: ...
    """

    def load(self, key: str) -> TokenSet | None:
        """Return the tokens stored under ``key``, or ``None``."""
        ...

    def save(self, key: str, tokens: TokenSet) -> None:
        """Store ``tokens`` under ``key`` atomically, replacing any previous set."""
        ...

    def delete(self, key: str) -> None:
        """Forget the tokens of ``key`` (no error if there are none)."""
        ...


class MemoryTokenStore:
    """Keeps tokens in a dict: for tests and single-process apps that may lose them on restart.

    Example::

        client = Client(provider, client_id, secret, store=MemoryTokenStore())
    """

    def __init__(self) -> None:
        self._tokens: dict[str, TokenSet] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> TokenSet | None:
        """Return the tokens stored under ``key``, or ``None``."""
        with self._lock:
            return self._tokens.get(key)

    def save(self, key: str, tokens: TokenSet) -> None:
        """Store ``tokens`` under ``key``."""
        with self._lock:
            self._tokens[key] = tokens

    def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""
        with self._lock:
            self._tokens.pop(key, None)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._tokens)})"


class FileTokenStore:
    """Keeps every key's tokens in one JSON file, readable only by its owner (mode 0600).

    Each save writes a temporary file in the same directory, fsyncs it, and
    renames it over the old one (``os.replace`` is atomic), so a crash leaves
    either the old file or the new one. Writers in several processes are
    serialised with an advisory lock on ``<path>.lock`` (POSIX).

    Example::

        store = FileTokenStore("/var/lib/myapp/tokens.json")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """Where the tokens live."""
        return self._path

    def load(self, key: str) -> TokenSet | None:
        """Return the tokens stored under ``key``, or ``None``."""
        entry = self._read().get(key)
        return None if entry is None else TokenSet.from_dict(entry)

    def save(self, key: str, tokens: TokenSet) -> None:
        """Store ``tokens`` under ``key`` by atomically replacing the file."""
        with self._lock, self._process_lock():
            entries = self._read()
            entries[key] = tokens.to_dict()
            self._write(entries)

    def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""
        with self._lock, self._process_lock():
            entries = self._read()
            if entries.pop(key, None) is not None:
                self._write(entries)

    def _read(self) -> dict[str, Any]:
        try:
            with self._path.open(encoding="utf-8") as f:
                document = json.load(f)
        except FileNotFoundError:
            return {}
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(tokens, dict):
            raise ValueError(f"{self._path} is not a token file")
        return tokens

    def _write(self, entries: dict[str, Any]) -> None:
        directory = self._path.parent
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self._path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": _FILE_FORMAT, "tokens": entries}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        if sys.platform == "win32":
            yield
            return
        import fcntl

        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._path)!r})"


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SQLTokenStore:
    """Keeps tokens in a small table of any SQLAlchemy database (sync engine).

    ``engine`` is an :class:`sqlalchemy.Engine` or a URL; the table
    (``consentry_client_tokens`` by default) is created if missing. Each save is
    one transaction, so a key's set is replaced as a whole.

    Example::

        store = SQLTokenStore("sqlite:////var/lib/myapp/app.db")
    """

    def __init__(
        self,
        engine: Engine | str,
        *,
        table_name: str = "consentry_client_tokens",
        create_table: bool = True,
    ) -> None:
        self._engine = create_engine(engine) if isinstance(engine, str) else engine
        metadata = MetaData()
        self._table = Table(
            table_name,
            metadata,
            Column("key", String(255), primary_key=True),
            Column("access_token", Text, nullable=False),
            Column("token_type", String(40), nullable=False),
            Column("expires_in", Integer, nullable=True),
            Column("expires_at", Float, nullable=True),
            Column("refresh_token", Text, nullable=True),
            Column("scope", Text, nullable=True),
            Column("updated_at", Float, nullable=False),
        )
        if create_table:
            metadata.create_all(self._engine)

    def load(self, key: str) -> TokenSet | None:
        """Return the tokens stored under ``key``, or ``None``."""
        t = self._table
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.key == key)).mappings().first()
        if row is None:
            return None
        return TokenSet(
            access_token=row["access_token"],
            token_type=row["token_type"],
            expires_in=row["expires_in"],
            expires_at=row["expires_at"],
            refresh_token=row["refresh_token"],
            scope=row["scope"],
        )

    def save(self, key: str, tokens: TokenSet) -> None:
        """Insert or replace the row of ``key`` in one transaction."""
        t = self._table
        values = tokens.to_dict() | {"updated_at": time.time()}
        for attempt in range(2):
            try:
                with self._engine.begin() as conn:
                    done = conn.execute(update(t).where(t.c.key == key).values(**values))
                    if done.rowcount == 0:
                        conn.execute(insert(t).values(key=key, **values))
                return
            except IntegrityError:
                if attempt:  # another writer inserted the key between our update and insert
                    raise

    def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""
        t = self._table
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(t.c.key == key))

    def __repr__(self) -> str:
        return f"SQLTokenStore(table={self._table.name!r})"
