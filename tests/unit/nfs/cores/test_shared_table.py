"""The shared-memory table of the ``lock`` strategy (``nfs.cores.shared_table.SharedTable``).

Single-process behaviour first: insert/update/delete/reinsert through ``transact``, linear
probing over forced collisions (tiny capacity, one stripe), tombstones and their reuse,
``TableFull``, the header checks a core makes when it opens the table, ``items()`` and the
``moved`` flag. Then real concurrency: four processes started with the ``spawn`` method (so
they share nothing but the file, like the workers) each add 2000 to one hot counter and to
private counters; the hot counter must end at exactly 8000.
"""

from __future__ import annotations

import multiprocessing
import struct
import zlib

import pytest

from nfs.cores.shared_table import EMPTY, TOMBSTONE, SharedTable, TableFull

KEY = struct.Struct("<I")
VALUE = struct.Struct("<I")
HOT = (0xC0FFEE,)


def increment(old: tuple | None) -> tuple:
    return ((0 if old is None else old[0]) + 1,)


def put(value: int):
    return lambda old: (value,)


def delete(old: tuple | None) -> None:
    return None


def home_slot(key: int, capacity: int) -> int:
    """The first slot probed for ``key`` in a one-stripe table."""
    return zlib.crc32(KEY.pack(key)) % capacity


def colliding_keys(capacity: int, count: int) -> list[int]:
    """``count`` keys with the same home slot in a one-stripe table of ``capacity``."""
    by_slot: dict[int, list[int]] = {}
    for k in range(100_000):
        keys = by_slot.setdefault(home_slot(k, capacity), [])
        keys.append(k)
        if len(keys) == count:
            return keys
    raise AssertionError("no collisions found")


@pytest.fixture
def table(tmp_path):
    with SharedTable(tmp_path / "t", KEY, VALUE, capacity=64, stripes=4, create=True) as t:
        yield t


def test_insert_update_delete_reinsert(table):
    assert table.get((1,)) is None
    assert table.transact((1,), increment, core=0) == (None, (1,), False)
    assert table.transact((1,), increment, core=0) == ((1,), (2,), False)
    assert table.get((1,)) == (2,)
    assert table.transact((1,), put(40), core=0) == ((2,), (40,), False)
    assert table.transact((1,), delete, core=0) == ((40,), None, False)
    assert table.get((1,)) is None and len(table) == 0
    # Deleting an absent key is a no-op that reports nothing.
    assert table.transact((1,), delete, core=0) == (None, None, False)
    assert table.transact((1,), increment, core=0) == (None, (1,), False)
    assert table.items() == {(1,): (1,)}


def test_items_and_len(table):
    for k in range(40):
        for _ in range(k % 3 + 1):
            table.transact((k,), increment, core=k % 2)
    for k in range(0, 40, 4):
        table.transact((k,), delete, core=0)
    expected = {(k,): (k % 3 + 1,) for k in range(40) if k % 4}
    assert table.items() == expected
    assert len(table) == len(expected) == 30


def test_multi_field_keys_and_values(tmp_path):
    key, value = struct.Struct("!IIHHB"), struct.Struct("<qd?")
    with SharedTable(tmp_path / "t", key, value, capacity=16, stripes=2, create=True) as t:
        flow = (0x0A000001, 0x0A000002, 1234, 80, 6)
        t.transact(flow, lambda old: (-5, 2.5, True), core=3)
        assert t.items() == {flow: (-5, 2.5, True)}


def test_probing_over_collisions(tmp_path):
    capacity = 8
    keys = colliding_keys(capacity, 4)
    with SharedTable(tmp_path / "t", KEY, VALUE, capacity=capacity, stripes=1,
                     create=True) as t:
        for i, k in enumerate(keys):
            t.transact((k,), put(i + 100), core=0)
        # All share one home slot, so three of them were placed by probing.
        assert {t.get((k,)) for k in keys} == {(100,), (101,), (102,), (103,)}
        # Deleting one in the middle of the chain leaves a tombstone that probes pass.
        t.transact((keys[1],), delete, core=0)
        assert t.get((keys[1],)) is None
        assert [t.get((k,)) for k in keys[2:]] == [(102,), (103,)]
        assert TOMBSTONE in t._statuses()
        assert len(t) == 3


def test_tombstone_reuse_and_table_full(tmp_path):
    with SharedTable(tmp_path / "t", KEY, VALUE, capacity=4, stripes=1, create=True) as t:
        for k in range(4):
            t.transact((k,), increment, core=0)
        with pytest.raises(TableFull, match="full"):
            t.transact((99,), increment, core=0)
        assert len(t) == 4 and t.get((99,)) is None
        # In a full table the deleted slot's successor is used: it becomes a tombstone,
        # and the only free slot for the next new key.
        t.transact((2,), delete, core=0)
        assert t._statuses().count(TOMBSTONE) == 1
        assert t.transact((99,), increment, core=0) == (None, (1,), False)
        assert t.items() == {(0,): (1,), (1,): (1,), (3,): (1,), (99,): (1,)}
        with pytest.raises(TableFull):
            t.transact((100,), increment, core=0)
        # Updating an existing key in a full table still works.
        assert t.transact((99,), increment, core=0)[1] == (2,)


def test_tombstones_are_cleared_when_a_chain_ends(tmp_path):
    capacity = 8
    keys = colliding_keys(capacity, 3)
    with SharedTable(tmp_path / "t", KEY, VALUE, capacity=capacity, stripes=1,
                     create=True) as t:
        for k in keys:
            t.transact((k,), increment, core=0)
        t.transact((keys[0],), delete, core=0)
        t.transact((keys[1],), delete, core=0)
        assert t._statuses().count(TOMBSTONE) == 2
        # The chain's last entry is followed by an empty slot: deleting it frees all three.
        t.transact((keys[2],), delete, core=0)
        assert t._statuses() == bytes([EMPTY] * capacity)


def test_moved_flag(table):
    assert table.transact(HOT, increment, core=0)[2] is False  # new key: nobody had it
    assert table.transact(HOT, increment, core=0)[2] is False  # same core twice
    assert table.transact(HOT, increment, core=1)[2] is True   # core 0 -> core 1
    assert table.transact(HOT, increment, core=0)[2] is True   # and back
    assert table.transact(HOT, increment, core=0)[2] is False
    assert table.transact(HOT, delete, core=2)[2] is True      # a delete moves it too
    # The owner belongs to the slot, not the key: the deleting core reinserting the key
    # into the slot it just freed moves nothing.
    assert table.transact(HOT, increment, core=2)[2] is False
    assert table.transact(HOT, increment, core=1)[2] is True


def test_failed_transition_leaves_the_table_unchanged(table):
    table.transact((5,), put(7), core=0)

    def boom(old):
        raise KeyError("nf bug")

    with pytest.raises(KeyError):
        table.transact((5,), boom, core=1)
    assert table.get((5,)) == (7,)
    assert table.transact((5,), increment, core=0) == ((7,), (8,), False)


@pytest.mark.parametrize("bad", [("x",), (1, 2), (-1,), 5])
def test_bad_key_is_a_value_error(table, bad):
    with pytest.raises(ValueError, match="does not fit format"):
        table.transact(bad, increment, core=0)
    with pytest.raises(ValueError, match="does not fit format"):
        table.get(bad)


@pytest.mark.parametrize("bad", [("x",), (1, 2), (2**40,), 5])
def test_bad_value_is_a_value_error(table, bad):
    with pytest.raises(ValueError, match="does not fit format"):
        table.transact((1,), lambda old: bad, core=0)
    assert table.get((1,)) is None and len(table) == 0


@pytest.mark.parametrize("core", [-1, 255])
def test_bad_core_is_a_value_error(table, core):
    with pytest.raises(ValueError, match="core must be"):
        table.transact((1,), increment, core=core)


def test_open_checks_the_header(tmp_path):
    path = tmp_path / "t"
    with pytest.raises(ValueError, match="must create it first"):
        SharedTable(path, KEY, VALUE)
    SharedTable(path, KEY, VALUE, capacity=64, stripes=4, create=True).close()
    with SharedTable(path, KEY, VALUE) as t:  # geometry comes from the header
        assert (t.capacity, t.stripes) == (64, 4)
    with SharedTable(path, KEY, VALUE, capacity=64, stripes=4):
        pass
    mismatches = [
        ((struct.Struct("<H"), VALUE), {}, "formats"),        # another key size
        ((KEY, struct.Struct("<Q")), {}, "formats"),          # another value size
        ((KEY, struct.Struct("<i")), {}, "formats"),          # same size, other meaning
        ((KEY, VALUE), {"capacity": 128}, "capacity 64"),
        ((KEY, VALUE), {"stripes": 8}, "4 stripes"),
    ]
    for formats, kwargs, message in mismatches:
        with pytest.raises(ValueError, match=message):
            SharedTable(path, *formats, **kwargs)
    path.write_bytes(b"\0" * 8192)
    with pytest.raises(ValueError, match="not a version-1 shared table"):
        SharedTable(path, KEY, VALUE)
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="not a shared table"):
        SharedTable(path, KEY, VALUE)


@pytest.mark.parametrize(("capacity", "stripes"), [(0, 1), (64, 0), (100, 8)])
def test_bad_geometry_is_a_value_error(tmp_path, capacity, stripes):
    with pytest.raises(ValueError, match="capacity"):
        SharedTable(tmp_path / "t", KEY, VALUE, capacity, stripes, create=True)


def test_create_resets_and_unlink_removes(tmp_path):
    path = tmp_path / "t"
    with SharedTable(path, KEY, VALUE, capacity=64, stripes=4, create=True) as t:
        t.transact((1,), increment, core=0)
    with SharedTable(path, KEY, VALUE, capacity=64, stripes=4, create=True) as t:
        assert len(t) == 0
        t.unlink()
        t.unlink()  # idempotent: cleanup may run twice
    assert not path.exists()


# --- across processes -----------------------------------------------------------------------
PRIVATE_KEYS = 5
ROUNDS = 2000


def _core_main(path: str, core: int, start) -> None:
    """One emulated core: opens the table by path (nothing inherited) and hammers it."""
    table = SharedTable(path, KEY, VALUE)

    def slow_increment(old):
        # Widen the read-modify-write window so that a missing lock would lose updates.
        x = 0
        for i in range(20):
            x += i
        return ((0 if old is None else old[0]) + 1,)

    start.wait()
    for i in range(ROUNDS):
        table.transact(HOT, slow_increment, core)
        table.transact((1000 * (core + 1) + i % PRIVATE_KEYS,), increment, core)
    table.close()


def _one_transact(path: str) -> None:
    with SharedTable(path, KEY, VALUE) as table:
        table.transact(HOT, increment, core=7)


def test_hot_counter_is_exact_across_processes(tmp_path):
    path = tmp_path / "t"
    cores = 4
    ctx = multiprocessing.get_context("spawn")
    with SharedTable(path, KEY, VALUE, capacity=1024, stripes=16, create=True) as t:
        start = ctx.Event()
        procs = [ctx.Process(target=_core_main, args=(str(path), c, start))
                 for c in range(cores)]
        for p in procs:
            p.start()
        try:
            start.set()
            for p in procs:
                p.join(timeout=30)
            assert [p.exitcode for p in procs] == [0] * cores
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join()
        items = t.items()
        assert items.pop(HOT) == (cores * ROUNDS,)
        assert items == {(1000 * (c + 1) + j,): (ROUNDS // PRIVATE_KEYS,)
                         for c in range(cores) for j in range(PRIVATE_KEYS)}


def test_a_failed_transition_releases_the_lock(tmp_path):
    path = tmp_path / "t"
    with SharedTable(path, KEY, VALUE, capacity=64, stripes=4, create=True) as t:
        with pytest.raises(ZeroDivisionError):
            t.transact(HOT, lambda old: 1 // 0, core=0)
        # Another process must get the same stripe's lock (a leaked one would block it).
        proc = multiprocessing.get_context("spawn").Process(target=_one_transact,
                                                            args=(str(path),))
        proc.start()
        proc.join(timeout=20)
        if proc.is_alive():
            proc.kill()
            proc.join()
            pytest.fail("the stripe lock was still held after the transition raised")
        assert proc.exitcode == 0
        assert t.get(HOT) == (1,)
