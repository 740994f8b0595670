"""Lab 7: fetch the records that lost packets took with them (starter: do the 4 TODOs).

An SCR core brings its replica up to date with the history records each of its frames
carries: the records of the packets since its previous frame. When one of its frames is
lost on the way (the sequencer's dispatch stage drops it here, on purpose), the next frame
cannot carry what the lost one did: the replica misses those records and drifts away from
the others. Loss recovery fixes that. Every core writes each record it receives into a
ring in shared memory, one ring per core, readable by every other core; a core that finds
a gap reads the missing records from its peers' rings, applies them, oldest first, then
goes on with its frame.

The base class, ``nfs.cores.recovery.RecoveringReplica``, already does the logging: before
anything is fetched, a core writes its frame's records into its own ring and then raises
its **horizon**, the highest sequence number it has received. This file writes the rest:

* :func:`peer_is_final` says when a peer's ring will never get a record it lacks now;
* :meth:`LogFetchReplica.fetch` reads the missing records from the peers' rings, and
  waits for the peers that may still write them;
* :meth:`LogFetchReplica.note_gap` applies what the fetch found, oldest first, and
  declares lost what no peer has (the oracle then checks that no peer had it).

Caveat: a fetch waits at most ``fetch_timeout_s`` (5 s) for a peer that is alive but
behind; one that is stuck for longer than that makes this core give up records the peer
may still get, and the oracle says so.
"""

# The starter names things that only the TODOs use (the solution uses every one):
# ruff: noqa: F401, F841

from __future__ import annotations

import time

from nfs.cores.recovery import (
    MAX_FETCH_SAMPLES,
    MAX_POLL_S,
    POLL_S,
    PeerLog,
    RecoveringReplica,
)
from nfs.cores.replica import MAX_GAPS_LOGGED, Replica
from nfs.strategies import Strategy
from nfs.strategies.scr import add_flags, worker_flags


def peer_is_final(ring: PeerLog, hi: int) -> bool:
    """Whether the peer owning ``ring`` can no longer log any record up to ``hi``: it
    died, it stopped (it got its STOP frame), or its horizon reached ``hi``."""
    # TODO 1: return True when the peer can no longer log a record up to `hi`: its owner
    # is dead (not ring.alive()), or it stopped (ring.stopped: it got its STOP frame), or
    # its horizon (ring.horizon: the highest sequence number it received) reached `hi`.
    # By SCR's history rule a frame carries only records newer than the previous frame
    # sent to the same core: a peer past `hi` already received every frame that could
    # carry one of these records.
    raise NotImplementedError("TODO 1: peer_is_final must say when a peer can no longer "
                              "log a record up to hi")


class LogFetchReplica(RecoveringReplica):
    """An SCR core that fetches the records it lost from its peers' rings (this lab's)."""

    def note_gap(self, first: int) -> None:
        """The frame just received starts with the record of ``first``, but the replica
        has applied records up to ``self.applied`` only: fetch ``applied+1 .. first-1``
        from the peers and apply them, oldest first, before the frame's own records."""
        lo, hi = self.applied + 1, first - 1
        if hi < lo:
            return  # no gap: the frame carries every record the replica lacks
        if hi - lo >= self.log.capacity:
            # Older than any ring can hold (or a frame from a far future): lost, unasked.
            oldest = hi - self.log.capacity + 1
            for seq in range(lo, oldest):
                self.declare_lost(seq)
            lo = oldest
        found = self.fetch(lo, hi)
        self.stats["recovered"] += len(found)
        # TODO 4: walk the missing records oldest first, seq = lo .. hi (not in the order
        # the peers gave them: a replica applies its updates in sequence order), and for
        # each one:
        #   - found: apply it, self.apply_record(seq, self._unpack_record(record)), then
        #     log it in this core's own ring, self.log.put(seq, record), for a peer that
        #     may need it later;
        #   - not found (no peer has it, and none ever will): self.declare_lost(seq), so
        #     that the replica's gaps say which update it lacks.
        raise NotImplementedError("TODO 4: apply the fetched records oldest first, "
                                  "declare the others lost")
        self.applied = hi  # the replica now holds (or has declared lost) every record < first

    def fetch(self, lo: int, hi: int) -> dict[int, bytes]:
        """The records of ``lo .. hi`` that any peer's ring holds, by sequence number (a
        record nobody has is simply not in the answer)."""
        started = time.monotonic()
        deadline = started + self.fetch_timeout_s
        self.stats["fetches"] += 1
        found: dict[int, bytes] = {}
        wanted = list(range(lo, hi + 1))
        pending = self.peers_in_order()
        poll = POLL_S
        while True:
            for peer in list(pending):
                ring = self.peer_logs[peer]
                # TODO 2: read this peer's ring, in this order:
                #   a. final = peer_is_final(ring, hi), BEFORE reading any record: a peer
                #      logs a frame's records before it raises its horizon, so the records
                #      read after a final status are all it will ever have (read them
                #      first, and a record logged in between would be missed for good);
                #   b. for each seq still in `wanted`, ring.get(seq) gives its record
                #      (bytes) or None: put every record found in found[seq];
                #   c. take the seqs found out of `wanted`;
                #   d. if the peer is final, take it out of `pending`: it has nothing more
                #      to give.
                raise NotImplementedError("TODO 2: read each pending peer's ring")
            # TODO 3: read the rings again, or stop:
            #   - stop (break) when nothing is wanted any more, or when no peer is pending:
            #     what is still missing is lost everywhere;
            #   - stop too once time.monotonic() is past `deadline`, and count it in
            #     self.stats["fetch_timeouts"] (a peer that is stuck);
            #   - otherwise a live peer is behind and may still log a missing record: give
            #     it time.sleep(poll) to run, double `poll` (at most MAX_POLL_S), and go
            #     round the `while` loop again.
            raise NotImplementedError("TODO 3: stop, or wait and read the rings again")
        self.record_fetch_time(started)
        return found

    # -- given: leave these as they are --
    def peers_in_order(self) -> list[int]:
        """The peers, the next core in the round robin first: it received the lost
        packet's successor, whose history holds most of what is missing."""
        return sorted(self.peers, key=lambda p: (p - self.core) % self.n_cores)

    def declare_lost(self, seq: int) -> None:
        """Record ``seq`` is in no ring and never will be: the replica goes on without it,
        and says so in ``gaps`` (the oracle checks each gap against the ground truth)."""
        self.stats["gap_records"] += 1
        self.stats["lost_everywhere"] += 1
        if self.gaps and self.gaps[-1][1] == seq - 1:
            self.gaps[-1] = (self.gaps[-1][0], seq)  # extends the previous range
        elif len(self.gaps) < MAX_GAPS_LOGGED:
            self.gaps.append((seq, seq))

    def record_fetch_time(self, started: float) -> None:
        """Count the fetch's wall time (the results' fetch latency percentiles)."""
        took = time.monotonic() - started
        self.fetch_s += took
        if len(self.fetch_us) < MAX_FETCH_SAMPLES:
            self.fetch_us.append(took * 1e6)


def make_core(nf, core: int, n_cores: int, args) -> Replica:
    """``--recovery PREFIX``: this lab's core on the rings ``PREFIX.core<i>``; without
    it, a plain SCR replica, which declares its gaps and never fetches."""
    if args.recovery is not None:
        return LogFetchReplica(nf, core, n_cores, args.recovery, joining=args.join)
    return Replica(nf, core, n_cores)


# -- the lab's plumbing (leave it as it is): run this core as the strategy "lab7-scr"; a
# trial with recovery=True passes every core --recovery PREFIX (the rings' names) --
STRATEGY = Strategy(name="lab7-scr", summary="SCR with lab 7's loss recovery", spray="scr",
                    history=True, make_core=make_core, add_flags=add_flags,
                    worker_flags=worker_flags, recovery=True)
