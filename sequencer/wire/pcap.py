"""pcap output: the testbed's captures (the shim's ground truth, the generator's traces).

A classic pcap, little-endian, link type 1 (Ethernet), in microseconds or nanoseconds (magic
``0xa1b2c3d4`` or ``0xa1b23c4d``): a 24-byte file header, then per frame a 16-byte record
header (seconds, fraction, captured length, original length) and the frame. Scapy's
``RawPcapWriter`` writes the format; this module only fixes its parameters.

Reading captures (pcap or pcapng, any byte order, any link type the testbed imports) is
``experiments.workload.trace_files``'s, with Scapy's readers.

Caveat: Scapy is imported on first write, not at import: importing it costs a data-path
process ~0.3 s of CPU that it should not pay at start-up (the shim writes its pcap only at
the end of a run).
"""

from __future__ import annotations

from pathlib import Path

LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 65535


def pcap_writer(path: Path | str, nano: bool, snaplen: int = DEFAULT_SNAPLEN,
                sync: bool = False):
    """An open Scapy ``RawPcapWriter`` of this format, its file header written; ``sync``
    flushes every frame (a capture that may be killed keeps what it wrote). OSError if the
    file cannot be made."""
    from scapy.utils import RawPcapWriter

    writer = RawPcapWriter(str(path), linktype=LINKTYPE_ETHERNET, endianness="<", nano=nano,
                           snaplen=snaplen, sync=sync)
    writer.write_header(None)  # write_packet does not write it, and there may be none
    return writer


def write_pcap(path: Path | str, frames, stamps, nano: bool,
               snaplen: int = DEFAULT_SNAPLEN) -> None:
    """Save Ethernet ``frames`` as a classic little-endian pcap, each with its ``(seconds,
    fraction)`` stamp (the fraction in ns when ``nano``, else in µs)."""
    with pcap_writer(path, nano, snaplen) as writer:
        for frame, (sec, frac) in zip(frames, stamps, strict=True):
            # With nano=True, RawPcapWriter writes ``usec`` as is: nanoseconds, then.
            writer.write_packet(frame, sec=sec, usec=frac)


def write_pcap_ns(path: Path | str, frames, timestamps_ns) -> None:
    """Save Ethernet ``frames`` as a nanosecond pcap, each stamped with its time in ns."""
    write_pcap(path, frames, (divmod(ts, 1_000_000_000) for ts in timestamps_ns), nano=True)
