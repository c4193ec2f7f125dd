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
open already — SQLite's own descriptor, found on Linux through ``/proc/self/fd`` (on other
systems nothing is made and the PRAGMA stays). It is mapped through that descriptor and
no other is ever opened or closed on the file (see :func:`open_for`: a close would drop
SQLite's locks). The mapping must not outlive the connection it was made for: while that
connection is open, SQLite holds a shared lock on the file that keeps any other process
from reinitialising or truncating it.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("consentry.db")

# One copy of the header; the two copies are bytes 0-47 and 48-95.
HEADER_SIZE = 48
# iVersion (offset 0) of the format walformat.html describes, and isInit (offset 12).
WAL_INDEX_VERSION = 3007000
_VERSION = struct.Struct("=I")
_IS_INIT = 12
_CLOSED = ctypes.create_string_buffer(0)  # what a closed header reads: never a whole one


class WalIndexHeader:
    """Both copies of the WAL-index header of one database, as SQLite's ``-shm`` holds them.

    ``view`` is anything with a ``raw`` attribute giving those 96 bytes: a ctypes array over
    the mapped file (:func:`open_for`), or a buffer of fixed bytes (tests)."""

    __slots__ = ("_view", "_release")

    def __init__(self, view: Any, release: Callable[[], None] | None = None) -> None:
        self._view = view
        self._release = release

    def read(self) -> bytes:
        """Both copies (96 bytes). Equal halves: one whole header; different: a commit is
        being written (or the file is not what it should be), so nothing can be concluded."""
        return self._view.raw  # type: ignore[no-any-return]

    def close(self) -> None:
        release, self._release = self._release, None
        self._view = _CLOSED
        if release is not None:
            release()


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
    have run a statement on the database already (SQLite opens and maps the file then).

    The file is mapped through SQLite's own descriptor, with mmap(2) itself: opening and
    closing a descriptor of our own on it — as ``open`` + ``mmap.mmap`` would, which also
    keeps and later closes a duplicate — would drop every POSIX lock this process holds on
    the file (fcntl locks belong to the process and the file, and any close releases them),
    SQLite's among them: its lock that says "this database is in use", without which the
    next process to open the database reinitialises the file under our feet."""
    try:
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        locking = raw.execute("PRAGMA locking_mode").fetchone()[0]
        if str(mode).lower() != "wal" or str(locking).lower() != "normal":
            return None
        shm = Path(str(database) + "-shm")
        held = _descriptor_of(shm)
        if held is None:
            return None
        header = _map(*held)
    except Exception as exc:  # noqa: BLE001 - the file, the mapping or the database: the PRAGMA stays
        log.info("sqlite: WAL-index header not mapped (%s); PRAGMA data_version instead",
                 type(exc).__name__)
        return None
    if header is not None and not whole(header.read()):
        header.close()
        return None
    return header


def _same_file(fd: int, want: tuple[int, int]) -> bool:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino) == want and st.st_size >= 2 * HEADER_SIZE


def _map(fd: int, want: tuple[int, int]) -> WalIndexHeader | None:
    """The first 96 bytes of the file open as ``fd`` (SQLite's; ``want``: its device and
    inode), mapped read-only."""
    if not _same_file(fd, want):
        return None
    libc = _libc()
    addr = libc.mmap(None, 2 * HEADER_SIZE, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return None
    # The descriptor may not have been swapped for another file while it was mapped: it is
    # still that file after the call (a mapping holds its file, not the descriptor).
    if not _same_file(fd, want):
        libc.munmap(addr, 2 * HEADER_SIZE)
        return None
    view = (ctypes.c_char * (2 * HEADER_SIZE)).from_address(addr)
    return WalIndexHeader(view, lambda: libc.munmap(addr, 2 * HEADER_SIZE))


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _LIBC = libc
    return _LIBC


def _descriptor_of(path: Path) -> tuple[int, tuple[int, int]] | None:
    """One of this process's open descriptors that is ``path`` (SQLite's, for the ``-shm``
    file), found without opening the file, with the file's device and inode; None if there
    is none, or where this cannot be seen (no ``/proc/self/fd``)."""
    fds = Path("/proc/self/fd")
    try:
        st = os.stat(path)
        names = os.listdir(fds)
    except OSError:
        return None
    want = (st.st_dev, st.st_ino)
    for name in names:
        try:
            other = os.stat(fds / name)  # follows the link: stat, no open
        except OSError:  # closed since the listing (or the listing's own descriptor)
            continue
        if (other.st_dev, other.st_ino) == want:
            return int(name), want
    return None
