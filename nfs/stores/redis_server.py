"""Run a real Redis server for a trial of the ``remote`` strategy, then dump its state.

The ``remote`` strategy's NF is stateless: its cores keep every key's value in Redis (see
:class:`nfs.stores.clients.RedisClient`). This wrapper starts ``redis-server`` as its child,
bound to 127.0.0.1 only (in a trial, the NF host's namespace), without persistence: ``--save ""``,
``--appendonly no`` and a throwaway working directory, removed at the end. Redis's own log
goes to ``DIR/redis.log``.

It prints ``READY`` once the child answers PING. On SIGTERM or SIGINT it reads every state
key (``k:*``, with SCAN) and the order list ``scr:order``, writes ``DIR/store.json``
(``kind``, ``ops`` = the order list's length, ``state``, ``cpu_s``, ``redis_cpu_s`` from
``INFO cpu``, ``bad_keys``: keys that do not unpack, ``bad_order``: order entries that are
not integers) and ``DIR/store_order.csv`` (``pos,seq``), then stops the child and exits 0.
A bad ``--port`` (outside 1..65535, or already taken on 127.0.0.1), ``--nf-params`` or
``--out`` ends it with one line and exit status 2 before Redis starts.

Run: ``python -m nfs.stores.redis_server --nf ddos --port 6390 --out DIR``.

:class:`RedisServer` (``with RedisServer(port, log_path) as server: ...``) starts and stops
the child; the tests use it directly.

Caveats: the child never outlives the wrapper: it is stopped in a ``finally`` and, should the
wrapper be killed outright, the kernel kills it too (``PR_SET_PDEATHSIG``). Redis is found on
the PATH; the Makefile installs the Debian package. ``ops`` counts the transitions that
reached the order list, which for the naive (racy) client includes lost updates.
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from nfs import NF_CLASSES
from nfs.base import NetworkFunction
from nfs.stores.clients import KEY_PREFIX, STORE_ORDER_KEY
from nfs.stores.service import nf_from_args, write_order_csv
from sequencer.dataplane import (
    StopRequested,
    announce_ready,
    check_places,
    cpu_seconds,
    ignore_stop_signals,
    port_is_free,
    raise_on_stop_signals,
    run_until_stopped,
    write_json,
)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LOG_TAIL_LINES = 3


class RedisStoreError(RuntimeError):
    """The Redis server could not be started or read; the message is one line."""


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGKILL when the wrapper dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _log_tail(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [line for line in lines if line][-_LOG_TAIL_LINES:]
    return " | ".join(lines) if lines else "(empty log)"


class RedisServer:
    """A ``redis-server`` child on 127.0.0.1:``port``, logging to ``log_path``, no disk."""

    def __init__(self, port: int, log_path: str | Path):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port must be in 1..65535, not {port!r}")
        self.port = port
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None
        self._workdir: str | None = None

    def client(self, **kwargs) -> redis.Redis:
        """A synchronous client of this server (bytes replies)."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=False,
                           socket_connect_timeout=2, **kwargs)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the child and wait until it answers; RedisStoreError (one line) otherwise."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisStoreError(
                "redis-server not found; install the Debian package redis-server")
        self._workdir = tempfile.mkdtemp(prefix="scr-redis-")
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [executable, "--bind", "127.0.0.1", "--port", str(self.port),
                     "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                     "--daemonize", "no", "--dir", self._workdir, "--logfile", ""],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent)
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = self.client(socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RedisStoreError(
                        f"redis-server on port {self.port} exited with status "
                        f"{self.process.returncode}: {_log_tail(self.log_path)}")
                try:
                    # The pid tells our child from another server already on that port
                    # (then ours is about to exit with "address already in use").
                    if client.info("server")["process_id"] == self.process.pid:
                        return
                except (redis.RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RedisStoreError(f"redis-server on port {self.port} did not answer "
                                     f"within {timeout_s:g} s: {_log_tail(self.log_path)}")
                time.sleep(0.02)
        finally:
            client.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL if it hangs) and remove its directory."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.terminate()  # no save points, no AOF: Redis exits without writing
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def dump(server: RedisServer, nf: NetworkFunction) -> tuple[dict, list[int]]:
    """The store's results (``store.json``'s content) and its order list."""
    client = server.client(socket_timeout=30)
    try:
        state, bad_keys = {}, 0
        keys = list(client.scan_iter(match=KEY_PREFIX + b"*", count=1000))
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            for key, value in zip(chunk, client.mget(chunk), strict=True):
                try:
                    state[nf.unpack_key(key[len(KEY_PREFIX):])] = nf.unpack_value(value)
                except (TypeError, struct.error):  # struct.error is no ValueError
                    bad_keys += 1  # not written by a store client: never crash the dump
        order, bad_order = [], 0
        for seq in client.lrange(STORE_ORDER_KEY, 0, -1):
            try:
                order.append(int(seq))
            except ValueError:
                bad_order += 1  # idem
        cpu = client.info("cpu")
    finally:
        client.close()
    results = {
        "kind": "redis",
        "ops": len(order),
        "state": nf.state_to_json(state),
        "bad_keys": bad_keys,
        "bad_order": bad_order,
        "cpu_s": cpu_seconds(),
        "redis_cpu_s": round(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), 3),
    }
    return results, order


def _wait_for_stop(server: RedisServer) -> None:
    """Idle until a stop signal (StopRequested); fail if the child dies meanwhile."""
    while server.alive:
        time.sleep(0.2)
    raise RedisStoreError(f"redis-server on port {server.port} died during the trial: "
                     f"{_log_tail(server.log_path)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    try:
        nf = nf_from_args(args.nf, args.nf_params)
        server = RedisServer(args.port, args.out / "redis.log")
        check_places(args.out)
    except ValueError as err:
        parser.exit(2, f"redis_store: {err}\n")
    if not port_is_free(args.port):
        # Redis would say so too, but in three lines of its log, after starting.
        parser.exit(2, f"redis_store: 127.0.0.1:{args.port} is already in use\n")

    def finish() -> None:
        if not server.alive:
            raise RedisStoreError(f"redis-server on port {server.port} died during the "
                                  f"trial: {_log_tail(server.log_path)}")
        results, order = dump(server, nf)
        write_json(args.out / "store.json", results)
        write_order_csv(args.out / "store_order.csv", order)

    # From here on a stop signal unwinds through the finally below: the child always stops.
    raise_on_stop_signals()
    try:
        server.start()
        announce_ready()
        return run_until_stopped(lambda: _wait_for_stop(server), finish)
    except StopRequested:
        print("redis_store: stopped before the server was ready", file=sys.stderr)
        return 1
    except (RedisStoreError, redis.RedisError, OSError) as err:
        print(f"redis_store: {err}", file=sys.stderr)
        return 2
    finally:
        ignore_stop_signals()  # a second signal must not leave the child behind
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
