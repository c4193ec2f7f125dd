"""Token stores: behaviour shared by all, file permissions and atomic replacement, SQL."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect

from consentry.client import (
    FileTokenStore,
    MemoryTokenStore,
    SQLTokenStore,
    TokenSet,
    TokenStore,
)

ONE = TokenSet(access_token="a1" * 20, expires_in=3600, expires_at=1000.5, refresh_token="r1" * 20)
TWO = TokenSet(access_token="a2" * 20, expires_in=60, expires_at=2000.0, scope="read write")


@pytest.fixture(params=["memory", "file", "sql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenStore]:
    if request.param == "memory":
        yield MemoryTokenStore()
    elif request.param == "file":
        yield FileTokenStore(tmp_path / "tokens.json")
    else:
        engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        yield SQLTokenStore(engine)
        engine.dispose()


def test_store_saves_replaces_and_deletes(store: TokenStore) -> None:
    assert store.load("k") is None
    store.save("k", ONE)
    store.save("other", TWO)
    assert store.load("k") == ONE
    store.save("k", TWO)
    assert store.load("k") == TWO
    store.delete("k")
    store.delete("never-there")
    assert store.load("k") is None
    assert store.load("other") == TWO
    assert isinstance(store, TokenStore)


def test_store_survives_concurrent_writers(store: TokenStore) -> None:
    def write(i: int) -> None:
        for _ in range(5):
            store.save(f"k{i % 4}", ONE if i % 2 else TWO)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {store.load(f"k{i}") for i in range(4)} == {ONE, TWO}


def test_store_repr_shows_no_tokens(store: TokenStore) -> None:
    store.save("k", ONE)
    assert ONE.access_token not in repr(store)


@given(
    access=st.text(min_size=1),
    refresh=st.none() | st.text(),
    expires_in=st.none() | st.integers(0, 10**9),
    scope=st.none() | st.text(),
)
def test_token_set_dict_roundtrip(
    access: str, refresh: str | None, expires_in: int | None, scope: str | None
) -> None:
    tokens = TokenSet(
        access, "Bearer", expires_in, None if expires_in is None else 1.5, refresh, scope
    )
    assert TokenSet.from_dict(json.loads(json.dumps(tokens.to_dict()))) == tokens


# --- the file store ----------------------------------------------------------------------------


def test_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"format": 1, "tokens": {}}')
    path.chmod(0o644)  # a pre-existing file with loose permissions is replaced by a 0600 one
    old_umask = os.umask(0)
    try:
        FileTokenStore(path).save("k", ONE)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lock = tmp_path / "tokens.json.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_file_survives_another_process_reading_it(tmp_path: Path) -> None:
    FileTokenStore(tmp_path / "t.json").save("k", ONE)
    assert FileTokenStore(tmp_path / "t.json").load("k") == ONE


def test_file_is_fsynced_before_it_replaces_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.json"
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        calls.append(f"replace {Path(src).parent == tmp_path}")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    FileTokenStore(path).save("k", ONE)
    # temp file fsynced, renamed from the same directory, then the directory fsynced
    assert calls == ["fsync", "replace True", "fsync"]


def test_crash_during_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save("k", ONE)
    before = path.read_bytes()

    def crash(src: str, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.save("k", TWO)
    assert path.read_bytes() == before
    assert store.load("k") == ONE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_file_that_is_not_a_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        FileTokenStore(path).load("k")


# --- the SQL store -----------------------------------------------------------------------------


def test_sql_store_creates_its_own_table_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    SQLTokenStore(url).save("k", ONE)
    again = SQLTokenStore(url, table_name="consentry_client_tokens")
    assert again.load("k") == ONE
    engine = create_engine(url)
    assert "consentry_client_tokens" in inspect(engine).get_table_names()
    engine.dispose()


def test_sql_store_table_name_is_configurable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    a = SQLTokenStore(engine, table_name="tokens_a")
    b = SQLTokenStore(engine, table_name="tokens_b")
    a.save("k", ONE)
    assert b.load("k") is None
    engine.dispose()
