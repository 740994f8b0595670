"""RSS++: an indirection table of hash buckets over the cores, rebalanced by measured load.

RSS hashes a packet's flow fields into one of ``RETA_SIZE`` buckets and a NIC's
indirection table (RETA) maps each bucket to a core; RSS++ (Barbette et al., CoNEXT 2019)
rebalances that table from the load it measures per bucket, migrating the moved buckets'
flows with their state. Here the shim is the NIC: it hashes the NF's state key
(:func:`bucket_of`, the same function the cores use), sprays by the table, counts each
bucket's packets and, every interval, moves buckets from the most to the least loaded core
(:func:`rebalance`); every move is a :class:`Migration`, written to the trial's **plan**
(:class:`PlanWriter`, a file in shared memory that the cores read, :class:`PlanReader`)
before the first packet under the new table is sent. The old owner hands the bucket's
keys over through a **mailbox** file (:func:`mailbox_path`) once it has processed every
packet it got before the move; the new owner waits for it before the bucket's first packet.

Pure functions and small file helpers, below the NFs: the cores' side is
``nfs.cores.rsspp``, the shim's ``sequencer.shim`` (mode ``rsspp``).

Caveats: a bucket is the unit of migration, so a bucket holding the hottest flow cannot be
split: RSS++ stops where one flow exceeds a core, as RSS does. The plan is a text file
appended line by line; a reader sees whole lines only (it keeps a partial last line for
its next read).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

#: Buckets of the indirection table (a common NIC RETA size).
RETA_SIZE = 128
#: Rebalance only while the busiest core carries more than this over the mean.
DEFAULT_TOLERANCE = 0.1
#: At most this many buckets move per rebalancing round (RSS++ bounds its moves too).
MAX_MOVES = 8


def bucket_of(key: bytes) -> int:
    """The bucket of a packed state key: every packet of one key falls in one bucket."""
    return zlib.crc32(key) % RETA_SIZE


def initial_table(n_cores: int) -> list[int]:
    """Buckets dealt round-robin over the cores, as RSS starts."""
    if n_cores < 1:
        raise ValueError(f"need at least one core, got {n_cores}")
    return [b % n_cores for b in range(RETA_SIZE)]


@dataclass(frozen=True)
class Migration:
    """Bucket ``bucket`` goes from core ``src`` to core ``dst`` from sequence ``seq`` on."""

    seq: int
    bucket: int
    src: int
    dst: int

    def line(self) -> str:
        return f"{self.seq} {self.bucket} {self.src} {self.dst}\n"

    @classmethod
    def parse(cls, line: str) -> Migration:
        seq, bucket, src, dst = (int(x) for x in line.split())
        return cls(seq, bucket, src, dst)


def rebalance(table: list[int], loads: list[int], n_cores: int, *,
              tolerance: float = DEFAULT_TOLERANCE,
              max_moves: int = MAX_MOVES) -> list[tuple[int, int, int]]:
    """Move buckets from the most to the least loaded core, greedily, in place in
    ``table``; the moves as ``(bucket, from, to)``.

    Each step takes the busiest and the idlest core and moves the bucket of the busiest
    whose load is closest to half their gap (one that lowers the maximum: its load is
    below the gap), never one it already moved this round. It stops when the busiest
    core is within ``tolerance`` of the mean, after ``max_moves`` moves, or when no bucket
    can move: the busiest core's load is one bucket's (its hottest flow's), which no
    table can split."""
    if len(table) != len(loads):
        raise ValueError("one load per bucket")
    per_core = [0] * n_cores
    for bucket, core in enumerate(table):
        per_core[core] += loads[bucket]
    mean = sum(per_core) / n_cores
    moves: list[tuple[int, int, int]] = []
    while len(moves) < max_moves and mean > 0:
        busiest = max(range(n_cores), key=per_core.__getitem__)
        idlest = min(range(n_cores), key=per_core.__getitem__)
        gap = per_core[busiest] - per_core[idlest]
        if per_core[busiest] <= (1 + tolerance) * mean or gap <= 0:
            break
        moved = {b for b, _src, _dst in moves}  # a bucket moves at most once a round
        candidates = [b for b, core in enumerate(table)
                      if core == busiest and 0 < loads[b] < gap and b not in moved]
        if not candidates:
            break  # the busiest core's load is one bucket: it cannot be split
        bucket = min(candidates, key=lambda b: abs(loads[b] - gap / 2))
        table[bucket] = idlest
        per_core[busiest] -= loads[bucket]
        per_core[idlest] += loads[bucket]
        moves.append((bucket, busiest, idlest))
    return moves


class PlanWriter:
    """The shim's side of the plan: every migration, appended and flushed at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the run

    def add(self, migration: Migration) -> None:
        self._file.write(migration.line())
        self._file.flush()  # before the first packet under the new table is sent

    def close(self) -> None:
        self._file.close()


class PlanReader:
    """A core's side of the plan: new migrations since the last read (cheap when none)."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDONLY)
        self._offset = 0
        self._partial = b""

    def new(self) -> list[Migration]:
        """Migrations appended since the last call ([] after one ``fstat`` when none)."""
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return []
        data = self._partial + os.pread(self._fd, size - self._offset, self._offset)
        self._offset = size
        *lines, self._partial = data.split(b"\n")
        return [Migration.parse(line.decode()) for line in lines if line.strip()]

    def close(self) -> None:
        os.close(self._fd)


def mailbox_path(plan: Path, migration: Migration) -> Path:
    """Where the old owner leaves a migrated bucket's state for the new one (one file per
    move: its sequence number, bucket and both cores)."""
    m = migration
    return Path(f"{plan}.{m.seq}.{m.bucket}.{m.src}-{m.dst}")
