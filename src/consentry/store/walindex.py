"""SQLite's WAL-index header, read from the ``-shm`` file this process's SQLite has mapped.

``Database.read_unchanged`` keeps a read while nothing has been committed to the database
since. SQLite's own test for that, ``PRAGMA data_version``, starts a read transaction: a
statement through pysqlite, and a lock and an unlock of a read-mark on the ``-shm`` file
(two ``fcntl`` system calls) — more than the rest of a kept bearer GET. The thing it looks
at is the WAL-index header at the start of the ``-shm`` file (sqlite.org/walformat.html,
"The WAL-Index Header"): 48 bytes, stored twice. Every commit, by any connection of any
process, writes a new header in which ``iChange`` (a commit counter) and ``mxFrame`` (the
last valid frame of the WAL) have moved on; a checkpoint that restarts the WAL changes its
salts. A writer writes the second copy, then (after a memory barrier) the first, so a
reader that finds the two copies equal has one whole header, and a reader that catches a
commit half-way finds them different.

:class:`WalIndexHeader` maps the first bytes of that file read-only and returns both copies
as one ``bytes`` (96). If they equal the 96 bytes read *before* a kept value was read, no
commit has completed since: the value is still the database's. Anything else — the copies
differ, a commit moved them — sends the caller back to ``PRAGMA data_version``.

It is only made (:func:`open_for`) where the file it maps is provably the one SQLite uses
for the connection: the connection is in WAL mode with normal locking (exclusive locking
keeps the index in heap memory, not in the file), the header is initialised and of the
version this format describes, and this process holds the same file (device and inode)
open already — SQLite's own descriptor (checked on Linux through ``/proc/self/fd``; on
other systems nothing is made and the PRAGMA stays). The mapping must not outlive the
connection it was made for: while that connection is open, SQLite holds the file in place
(a shared lock on it keeps any other process from deleting it on close).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
from pathlib import Path
from typing import Any

log = logging.getLogger("consentry.db")

# One copy of the header; the two copies are bytes 0-47 and 48-95.
HEADER_SIZE = 48
# iVersion (offset 0) of the format walformat.html describes, and isInit (offset 12).
WAL_INDEX_VERSION = 3007000
_VERSION = struct.Struct("=I")
_IS_INIT = 12


class WalIndexHeader:
    """Both copies of the WAL-index header of one database, as SQLite's ``-shm`` holds them."""

    __slots__ = ("_map",)

    def __init__(self, mapping: Any) -> None:
        self._map = mapping

    def read(self) -> bytes:
        """Both copies (96 bytes). Equal halves: one whole header; different: a commit is
        being written (or the file is not what it should be), so nothing can be concluded."""
        return self._map[: 2 * HEADER_SIZE]  # type: ignore[no-any-return]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._map.close()


def whole(both: bytes) -> bool:
    """True if ``both`` (from :meth:`WalIndexHeader.read`) is one initialised header,
    stored twice, of the format described above."""
    first = both[:HEADER_SIZE]
    return (
        len(both) == 2 * HEADER_SIZE
        and first == both[HEADER_SIZE:]
        and first[_IS_INIT] == 1
        and _VERSION.unpack_from(first)[0] == WAL_INDEX_VERSION
    )


def open_for(raw: Any, database: Path) -> WalIndexHeader | None:
    """The header of ``database`` for the pysqlite connection ``raw``, or None where it
    cannot be shown to be the one SQLite uses (see the module's docstring). ``raw`` must
    have run a statement on the database already (SQLite opens and maps the file then)."""
    try:
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        locking = raw.execute("PRAGMA locking_mode").fetchone()[0]
        if str(mode).lower() != "wal" or str(locking).lower() != "normal":
            return None
        shm = Path(str(database) + "-shm")
        held = _held_by_this_process(shm)
        if held is None:
            return None
        fd = os.open(shm, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != held or st.st_size < 2 * HEADER_SIZE:
                return None
            # mmap keeps its own duplicate of the descriptor until it is closed.
            mapping = mmap.mmap(fd, 2 * HEADER_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
    except Exception as exc:  # noqa: BLE001 - the file, mmap or the database: the PRAGMA stays
        log.info("sqlite: WAL-index header not mapped (%s); PRAGMA data_version instead",
                 type(exc).__name__)
        return None
    header = WalIndexHeader(mapping)
    if not whole(header.read()):
        header.close()
        return None
    return header


def _held_by_this_process(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` if one of this process's open descriptors is that file
    (SQLite's, for the ``-shm`` file); None if not, or where this cannot be seen."""
    fds = Path("/proc/self/fd")
    try:
        st = os.stat(path)
        names = os.listdir(fds)
    except OSError:
        return None
    want = (st.st_dev, st.st_ino)
    for name in names:
        try:
            other = os.stat(fds / name)
        except OSError:  # closed since the listing (or the listing's own descriptor)
            continue
        if (other.st_dev, other.st_ino) == want:
            return want
    return None
