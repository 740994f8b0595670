"""The dedicated state service: one process owns the NF state, cores query it over TCP.

This is NetStar's serialized shared data structure: instead of each core keeping the state
(SCR) or locking a shared table (``lock``), the ``service`` strategy's cores send every
state transition to this process and await its answer. The service is single-threaded, so
each transition is atomic and all of them form one total order, which it records.

Per connection, requests are answered strictly in order (the client matches answers to
requests by position, no ids). Requests of different connections interleave in arrival
order. A request runs ``old = state.get(key); new = nf.apply(old, fields)`` and stores or
deletes ``new``; ``nf.apply`` includes the NF's ``state_work``, paid here, by the service.

Wire format: :mod:`sequencer.wire.state_service` (requests ``| seq | record length | record |``,
answers ``| flags | old value | new value |``), shared with :mod:`nfs.stores.clients`; the
loop in :meth:`StateService.serve` inlines it for speed.

A request whose record length is not the NF's record size is counted (``malformed``) and its
connection closed after the answers to the requests before it.

Run: ``python -m nfs.stores.service --nf ddos --listen 127.0.0.1:7000 --out DIR``. It prints
``READY`` once listening; SIGTERM or SIGINT stop it, and it writes ``DIR/store.json``
(``kind``, ``ops``, ``state``, ``connections``, ``malformed``, ``cpu_s``) and
``DIR/store_order.csv`` (``pos,seq``: the order in which it applied the requests).

Caveats: it listens on loopback addresses only (in a trial, the NF host's namespace). The
service answers a batch of buffered requests at once, so a burst is answered in one write;
when a client stops reading, the service stops reading that client too (flow control), so
its memory stays bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import signal
import sys
from array import array
from collections.abc import Iterable
from pathlib import Path

from nfs import NF_CLASSES, make_nf, parse_nf_params
from nfs.base import NetworkFunction
from sequencer.dataplane import (
    announce_ready,
    check_places,
    cpu_seconds,
    ignore_stop_signals,
    parse_address,
    write_json,
)
from sequencer.wire.state_service import FLAG_NEW, FLAG_OLD, REQUEST_HEADER

# The answers' flag bytes, one per case (``serve`` builds answers without a call each).
_NEITHER, _OLD_ONLY = bytes((0,)), bytes((FLAG_OLD,))
_NEW_ONLY, _BOTH = bytes((FLAG_NEW,)), bytes((FLAG_OLD | FLAG_NEW,))


def parse_listen(address: str) -> tuple[str, int]:
    """``host:port`` with a loopback IP host, else a one-line ValueError."""
    host, port = parse_address(address, "listen address")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the service listens on a loopback IP address only, not {host!r}")
    return host, port


def nf_from_args(name: str, params_json: str) -> NetworkFunction:
    """The NF of the ``--nf``/``--nf-params`` flags; a one-line ValueError for bad ones."""
    return make_nf(name, **parse_nf_params(params_json))


def write_order_csv(path: Path, order: Iterable[int]) -> None:
    """The order in which a store applied the transitions: ``pos,seq`` per line."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write("pos,seq\n")
        f.writelines(f"{pos},{seq}\n" for pos, seq in enumerate(order))
    tmp.replace(path)


class StateService:
    """The state, the order of the transitions and the counters, shared by connections."""

    def __init__(self, nf: NetworkFunction):
        self.nf = nf
        self.state = nf.new_state()
        self.order = array("q")
        self.connections = 0
        self.malformed = 0
        self.transports: set[asyncio.Transport] = set()

    def serve(self, data: bytes | memoryview, start: int) -> tuple[int, bytes, bool]:
        """Apply every complete request of ``data[start:]``: (bytes used, answers, ok).

        ``ok`` is False when a request was malformed: its connection must close.
        """
        nf, state, order = self.nf, self.state, self.order
        key_of, apply, unpack_record = nf.key, nf.apply, nf.record_format.unpack_from
        pack_value = nf.value_format.pack
        record_size = nf.record_format.size
        header_size, unpack_header = REQUEST_HEADER.size, REQUEST_HEADER.unpack_from
        zero = bytes(nf.value_format.size)
        answers = []
        pos, end = start, len(data)
        ok = True
        while end - pos >= header_size:
            seq, length = unpack_header(data, pos)
            if length != record_size:
                ok = False
                break
            if end - pos < header_size + length:
                break  # the rest of this request has not arrived yet
            try:
                fields = unpack_record(data, pos + header_size)
                key = key_of(fields)
                old = state.get(key)
                new = apply(old, fields)
                new_bytes = pack_value(*new) if new is not None else zero
            except Exception:  # a garbage record must not stop the service: drop its client
                ok = False
                break
            if new is None:
                state.pop(key, None)
            else:
                state[key] = new
            order.append(seq)
            pos += header_size + length
            if old is None:
                answers.append(_NEW_ONLY + zero + new_bytes if new is not None
                               else _NEITHER + zero + zero)
            else:
                answers.append((_BOTH if new is not None else _OLD_ONLY)
                               + pack_value(*old) + new_bytes)
        if not ok:
            self.malformed += 1
        return pos, b"".join(answers), ok

    def results(self) -> dict:
        return {
            "kind": "service",
            "ops": len(self.order),
            "state": self.nf.state_to_json(self.state),
            "connections": self.connections,
            "malformed": self.malformed,
            "cpu_s": cpu_seconds(),
        }

    def write_results(self, out_dir: Path) -> None:
        write_json(out_dir / "store.json", self.results())
        write_order_csv(out_dir / "store_order.csv", self.order)


class _Connection(asyncio.Protocol):
    """One client: requests are answered in order, a buffered batch in one write."""

    def __init__(self, service: StateService):
        self.service = service
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.service.connections += 1
        self.service.transports.add(transport)

    def connection_lost(self, exc) -> None:
        self.service.transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.buffer:
            self.buffer += data
            used, answers, ok = self.service.serve(self.buffer, 0)
            del self.buffer[:used]
        else:  # the common case: whole requests, nothing left over; no copy
            used, answers, ok = self.service.serve(data, 0)
            if used < len(data):
                self.buffer += memoryview(data)[used:]
        if answers:
            self.transport.write(answers)
        if not ok:
            self.buffer.clear()
            self.transport.close()  # after the answers already written

    # Flow control: a client that does not read its answers stops being read.
    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def serve(service: StateService, host: str, port: int) -> None:
    """Serve on ``host:port`` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: _Connection(service), host, port,
                                      reuse_address=True)
    announce_ready()
    try:
        await stop.wait()
    finally:
        # Ignore further stop signals from here on, so that a second SIGTERM cannot cut the
        # results in half; removing the handlers first keeps the loop's close() from
        # restoring the default (fatal) ones.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        ignore_stop_signals()
        server.close()
        for transport in list(service.transports):
            transport.abort()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--listen", required=True, help="loopback HOST:PORT to listen on")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        nf = nf_from_args(args.nf, args.nf_params)
        check_places(args.out)
    except ValueError as err:
        parser.exit(2, f"state_service: {err}\n")
    service = StateService(nf)
    try:
        asyncio.run(serve(service, host, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            parser.exit(2, f"state_service: {host}:{port} is already in use\n")
        parser.exit(2, f"state_service: cannot listen on {host}:{port}: {err.strerror}\n")
    service.write_results(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
