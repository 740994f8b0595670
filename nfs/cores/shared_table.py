"""A hash table in shared memory with striped locks: the state of the ``lock`` strategy.

The paper's lock baseline sprays packets over N cores that all update one shared state,
each entry guarded by a lock. Our cores are independent processes (``python -m nfs.worker``,
not forked from a common parent), so the state is a file (callers use ``/dev/shm/<name>``)
that every core maps with ``MAP_SHARED``, and the locks are POSIX record locks on that file.

Layout: a header page (magic, version, capacity, key and value size and format, stripes),
then ``capacity`` slots of ``[status, owner, key bytes, value bytes]``. ``status`` is empty,
used or tombstone; ``owner`` is ``core + 1`` of the last core that wrote the slot (0: none,
so that a zero-filled file is a valid empty table). Keys and values are packed with the
caller's ``struct.Struct`` formats; the hash is ``zlib.crc32`` of the packed key, which is
the same in every process (``hash()`` is salted per process).

Locking: ``stripe = crc32(key) % stripes`` and the table is split into ``stripes`` equal
segments; a key lives in its stripe's segment and linear probing wraps around *inside* that
segment. So one stripe lock guards every slot a transaction can read or write. (With one
global probe sequence, two cores inserting keys of different stripes could both claim the
same empty slot.) The price: a segment can fill up before the table does; ``TableFull``
names the segment. With crc32 spreading keys evenly this matters only near full capacity.

The stripe lock is a one-byte ``fcntl.lockf`` range of the data file itself, past the end
of the data (advisory locks do not have to cover existing bytes). Using the same file rather
than a separate ``<path>.lock`` means a core can never lock one inode while mapping another
(e.g. if the table was recreated between two opens), and there is one file to clean up.

Caveats:

* POSIX record locks belong to a *process*: two threads of one process do not exclude each
  other, and closing *any* descriptor of the file in that process drops all its locks
  (including a second ``SharedTable`` on the same path). One process per core, one table
  handle per process, is the intended use. The kernel releases the locks of a process that
  dies, so a crashed core cannot deadlock the others; a slot it was writing may then hold a
  half-written value.
* ``items()`` and ``len()`` read without locks: exact once the cores have stopped, a
  best-effort snapshot while they run.
* The owner byte is per slot, not per key: it survives deletion, so a key inserted into a
  slot another core wrote last counts as ``moved`` (its memory did move between cores).
* Cores are numbered 0..254 (one owner byte).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

MAGIC = b"SCRSHTB\0"
VERSION = 1
HEADER_SIZE = 4096  # one page, so that the slots start page-aligned
_FORMAT_FIELD = 64  # bytes reserved in the header for each struct format string
# magic, version, capacity, stripes, key size, value size, key format, value format
_HEADER = struct.Struct(f"<8sIIIII{_FORMAT_FIELD}s{_FORMAT_FIELD}s")

EMPTY = 0
USED = 1
TOMBSTONE = 2
MAX_CORES = 255  # owner byte stores core + 1; 0 means "no core yet"

Value = tuple
Transition = Callable[[tuple | None], tuple | None]


class TableFull(RuntimeError):
    """No free slot is left for a new key in its stripe's segment."""


class SharedTable:
    """A fixed-capacity key -> value table shared by processes through a mapped file.

    ``create=True`` makes (or truncates) and zero-fills the file; it is done once, by the
    trial runner, before the cores start. Cores open it with ``create=False``: ``capacity``
    and ``stripes`` then come from the header (and are checked if given), and a header that
    does not match their key/value formats is a ``ValueError``.
    """

    def __init__(self, path: Path | str, key_format: struct.Struct,
                 value_format: struct.Struct, capacity: int | None = None,
                 stripes: int | None = None, create: bool = False):
        self.path = Path(path)
        self.key_format = key_format
        self.value_format = value_format
        for what, fmt in (("key", key_format), ("value", value_format)):
            if not isinstance(fmt, struct.Struct):
                raise ValueError(f"{what}_format must be a struct.Struct, not {fmt!r}")
            if fmt.size == 0:
                raise ValueError(f"{what}_format {fmt.format!r} packs to zero bytes")
            if len(fmt.format.encode()) > _FORMAT_FIELD:
                raise ValueError(f"{what}_format {fmt.format!r} is longer than "
                                 f"{_FORMAT_FIELD} characters")
        self._fd = -1
        self.last_wait_ns = 0  # how long the last transact waited for its stripe lock
        self._mm: mmap.mmap | None = None
        if create:
            capacity = 65536 if capacity is None else capacity
            stripes = 1024 if stripes is None else stripes
            self._check_geometry(capacity, stripes)
            self._create(capacity, stripes)
        else:
            capacity, stripes = self._open(capacity, stripes)
        self.capacity = capacity
        self.stripes = stripes

        # Precomputed for transact(): it runs once per packet.
        ks, vs = key_format.size, value_format.size
        self._slot = 2 + ks + vs
        self._seg = capacity // stripes  # slots per stripe segment
        self._seg_bytes = self._seg * self._slot
        self._data_end = HEADER_SIZE + capacity * self._slot
        self._lock_base = self._data_end  # stripe i locks byte _lock_base + i
        self._key_size = ks
        self._key_off = 2
        self._val_off = 2 + ks
        self._key_pack = key_format.pack
        self._val_pack_into = value_format.pack_into
        self._val_unpack_from = value_format.unpack_from

    # --- opening ---------------------------------------------------------------------------
    @staticmethod
    def _check_geometry(capacity: int, stripes: int) -> None:
        if stripes < 1 or capacity < 1:
            raise ValueError(f"capacity ({capacity}) and stripes ({stripes}) must be >= 1")
        if capacity % stripes:
            raise ValueError(f"capacity ({capacity}) must be a multiple of stripes ({stripes})")

    def _header(self, capacity: int, stripes: int) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, capacity, stripes, self.key_format.size,
                            self.value_format.size, self.key_format.format.encode(),
                            self.value_format.format.encode())

    def _create(self, capacity: int, stripes: int) -> None:
        size = HEADER_SIZE + capacity * (2 + self.key_format.size + self.value_format.size)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Truncate to 0 first so that every byte reads back as zero (an empty table).
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            # Magic last: a core that opens a half-made file sees a mismatch, not garbage.
            header = self._header(capacity, stripes)
            self._mm[len(MAGIC):_HEADER.size] = header[len(MAGIC):]
            self._mm[:len(MAGIC)] = MAGIC
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _open(self, capacity: int | None, stripes: int | None) -> tuple[int, int]:
        try:
            fd = os.open(self.path, os.O_RDWR)  # lockf(LOCK_EX) needs write access
        except FileNotFoundError:
            raise ValueError(f"{self.path}: no shared table there "
                             "(the trial runner must create it first)") from None
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise ValueError(f"{self.path}: not a shared table ({size} bytes)")
            head = os.pread(fd, _HEADER.size, 0)
            magic, version, cap, nstripes, ks, vs, kf, vf = _HEADER.unpack(head)
            if magic != MAGIC or version != VERSION:
                raise ValueError(f"{self.path}: not a version-{VERSION} shared table")
            mine = (self.key_format.size, self.value_format.size,
                    self.key_format.format, self.value_format.format)
            theirs = (ks, vs, kf.rstrip(b"\0").decode(), vf.rstrip(b"\0").decode())
            if mine != theirs:
                raise ValueError(f"{self.path}: table holds key/value formats "
                                 f"{theirs[2]!r}/{theirs[3]!r} ({ks}/{vs} bytes), caller "
                                 f"uses {mine[2]!r}/{mine[3]!r} ({mine[0]}/{mine[1]} bytes)")
            if capacity not in (None, cap) or stripes not in (None, nstripes):
                raise ValueError(f"{self.path}: table has capacity {cap} and {nstripes} "
                                 f"stripes, caller asked for {capacity} and {stripes}")
            self._check_geometry(cap, nstripes)
            expected = HEADER_SIZE + cap * (2 + ks + vs)
            if size != expected:
                raise ValueError(f"{self.path}: file is {size} bytes, header says {expected}")
            self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return cap, nstripes

    # --- the per-packet operation ------------------------------------------------------
    def _probe(self, kb: bytes, h: int) -> tuple[int, int]:
        """(offset of ``kb``'s slot or -1, offset where to insert it or -1 if full).

        The caller holds the stripe lock of ``h``. Probing stops at the key or at the first
        empty slot; the insert offset is the first tombstone on the way, else that empty slot.
        """
        mm = self._mm
        seg = self._seg
        slot = self._slot
        base = HEADER_SIZE + (h % self.stripes) * self._seg_bytes
        i = (h // self.stripes) % seg
        ks0 = self._key_off
        ks1 = ks0 + self._key_size
        free = -1
        for _ in range(seg):
            off = base + i * slot
            status = mm[off]
            if status == USED:
                if mm[off + ks0:off + ks1] == kb:
                    return off, off
            elif status == EMPTY:
                return -1, (off if free < 0 else free)
            elif free < 0:
                free = off
            i += 1
            if i == seg:
                i = 0
        return -1, free

    def _locate(self, key: tuple) -> tuple[bytes, int, int]:
        """``key`` packed, its hash, and the byte its stripe lock covers."""
        try:
            kb = self._key_pack(*key)
        except (struct.error, TypeError) as err:
            raise ValueError(f"key {key!r} does not fit format "
                             f"{self.key_format.format!r}: {err}") from None
        h = zlib.crc32(kb)
        return kb, h, self._lock_base + h % self.stripes

    def transact(self, key: tuple, fn: Transition, core: int,
                 on_moved: Callable[[], object] | None = None,
                 ) -> tuple[Value | None, Value | None, bool]:
        """Atomically replace ``key``'s value ``old`` by ``fn(old)``: ``(old, new, moved)``.

        ``old``/``new`` are value tuples or None (absent; ``new`` None deletes the key). ``fn``
        runs inside the stripe lock. ``moved``: the slot was last written by another core;
        then ``on_moved()`` runs first, inside the lock (the worker charges the cost of
        fetching state another core wrote there). If ``fn`` raises, the table is unchanged.
        """
        if not 0 <= core < MAX_CORES:
            raise ValueError(f"core must be in 0..{MAX_CORES - 1}, not {core!r}")
        kb, h, lock_at = self._locate(key)
        stripes = self.stripes
        fd = self._fd
        asked = time.monotonic_ns()
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, lock_at)
        self.last_wait_ns = time.monotonic_ns() - asked  # the lock strategy's stall counter
        try:
            mm = self._mm
            # Fast path: the key sits in its home slot (the common case below ~70 % load).
            off = (HEADER_SIZE + (h % stripes) * self._seg_bytes
                   + (h // stripes) % self._seg * self._slot)
            if mm[off] == USED and mm[off + 2:off + self._val_off] == kb:
                found = free = off
            else:
                found, free = self._probe(kb, h)
            old = None if found < 0 else self._val_unpack_from(mm, found + self._val_off)
            slot = found if found >= 0 else free
            if on_moved is not None and slot >= 0 and mm[slot + 1] not in (0, core + 1):
                on_moved()
            new = fn(old)
            if new is None:
                if found < 0:
                    return None, None, False
                off = found
                moved = mm[off + 1] not in (0, core + 1)
                mm[off + 1] = core + 1
                self._delete_at(off)
                return old, None, moved
            off = found if found >= 0 else free
            if off < 0:
                raise TableFull(f"{self.path}: segment {h % self.stripes} is full "
                                f"({self._seg} slots of {self.capacity}); cannot insert "
                                f"{key!r} (make the table larger)")
            try:
                self._val_pack_into(mm, off + self._val_off, *new)
            except (struct.error, TypeError) as err:
                raise ValueError(f"value {new!r} does not fit format "
                                 f"{self.value_format.format!r}: {err}") from None
            if found < 0:
                mm[off + self._key_off:off + self._key_off + self._key_size] = kb
                mm[off] = USED
            prev_owner = mm[off + 1]
            mm[off + 1] = core + 1
            return old, new, prev_owner not in (0, core + 1)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, lock_at)

    def _delete_at(self, off: int) -> None:
        """Free the used slot at ``off`` (stripe lock held).

        If the next slot in probe order is empty, no probe needs to pass this slot, so it
        becomes empty, and so do the tombstones just before it: this keeps insert/delete
        churn (flows opened and closed) from filling a segment with tombstones.
        """
        mm = self._mm
        slot = self._slot
        seg_start = HEADER_SIZE + ((off - HEADER_SIZE) // self._seg_bytes) * self._seg_bytes
        seg_end = seg_start + self._seg_bytes
        nxt = off + slot
        if nxt == seg_end:
            nxt = seg_start
        if mm[nxt] != EMPTY:
            mm[off] = TOMBSTONE
            return
        mm[off] = EMPTY
        for _ in range(self._seg - 1):
            off = (off if off > seg_start else seg_end) - slot
            if mm[off] != TOMBSTONE:
                break
            mm[off] = EMPTY

    # --- reads -----------------------------------------------------------------------------
    def get(self, key: tuple) -> Value | None:
        """``key``'s value, or None; read under the stripe lock."""
        kb, h, lock_at = self._locate(key)
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, lock_at)
        try:
            found, _ = self._probe(kb, h)
            return None if found < 0 else self._val_unpack_from(self._mm, found + self._val_off)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, lock_at)

    def _statuses(self) -> bytes:
        return self._mm[HEADER_SIZE:self._data_end:self._slot]

    def items(self) -> dict[tuple, Value]:
        """All entries as ``{key: value}``; lock-free (exact once the cores stopped)."""
        mm = self._mm
        out = {}
        for i, status in enumerate(self._statuses()):
            if status == USED:
                off = HEADER_SIZE + i * self._slot
                out[self.key_format.unpack_from(mm, off + self._key_off)] = \
                    self._val_unpack_from(mm, off + self._val_off)
        return out

    def __len__(self) -> int:
        return self._statuses().count(USED)

    # --- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Unmap and close the file (idempotent); the file stays for other cores."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1  # later lockf calls fail with EBADF, never on a reused fd

    def unlink(self) -> None:
        """Remove the table's file (the trial runner's cleanup); a missing file is fine."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SharedTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SharedTable({str(self.path)!r}, key {self.key_format.format!r}, value "
                f"{self.value_format.format!r}, capacity {self.capacity}, "
                f"stripes {self.stripes})")
