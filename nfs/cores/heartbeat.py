"""The heartbeat sender: a daemon thread that beats out of a core's port until stopped.

The frame is :mod:`sequencer.wire.heartbeat`'s; the controller watches for it.

Caveat: a full socket queue skips a beat (the next one will do); a worker stuck in a loop
keeps beating, since the beat runs in its own thread.
"""

from __future__ import annotations

import threading

from sequencer.dataplane import open_socket
from sequencer.wire.heartbeat import (
    BACKUP,
    CORE,
    DEFAULT_HEARTBEAT_MS,
    PRIMARY,
    ROLES,
    heartbeat_frame,
)

__all__ = ["BACKUP", "CORE", "DEFAULT_HEARTBEAT_MS", "PRIMARY", "Heartbeat"]


class Heartbeat(threading.Thread):
    """Sends a heartbeat frame out of ``iface`` every ``interval_s`` until stopped."""

    def __init__(self, iface: str, role: int, interval_s: float = DEFAULT_HEARTBEAT_MS / 1000):
        if not interval_s > 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval_s}")
        super().__init__(name=f"heartbeat-{ROLES[role]}", daemon=True)
        self.role = role
        self.interval_s = interval_s
        self.sock = open_socket(iface, None)
        self.sent = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.interval_s):
                try:
                    self.sock.send(heartbeat_frame(self.role, self.sent))
                    self.sent += 1
                except OSError:
                    pass  # a full queue: the next beat will do
        finally:
            self.sock.close()

    def stop(self) -> None:
        self._stop_event.set()
