"""Capture files and trace import (``experiments.workload.trace_files``).

Captures are written here with Scapy's own writers (``wrpcap``, ``wrpcapng``,
``PcapNgWriter``, ``RawPcapWriter`` big-endian and nanosecond, gzip) from packets built with
Scapy's layers, with addresses outside the testbed's range. What must hold:

* ``read_capture`` reads pcap and pcapng in either byte order, with µs, ns or binary
  (``if_tsresol``) stamps, to the nanosecond, and several link types in one pcapng;
* ``write_pcap`` with ``timestamps_ns`` round-trips nanoseconds exactly (Scapy's
  ``RawPcapWriter`` writes ``usec`` as nanoseconds when ``nano=True``);
* ``import_trace`` keeps the IPv4 frames, counts the others by reason, maps every address
  one-to-one into 198.18.0.0/15 in order of first appearance (the same every time), keeps
  flows and their packet counts, puts the testbed's MACs on, and leaves checksums that
  verify (Scapy recomputes them), on frames cut by a snap length too; a UDP checksum of 0
  stays 0; every link type and every file format gives the same trace;
* every bad file is one ``TraceError`` of one line that names the file, and nothing is
  printed (no Scapy warning).

Pure unit tests: no network, no root.
"""

from __future__ import annotations

import gzip
import inspect
import ipaddress
import json
import struct
from collections import Counter
from decimal import Decimal

import pytest
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, defragment, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Raw
from scapy.utils import (
    PcapNgWriter,
    RawPcapNgWriter,
    RawPcapReader,
    RawPcapWriter,
    rdpcap,
    wrpcap,
    wrpcapng,
)

from experiments.workload import trace_files as tf
from experiments.workload import traffic
from sequencer.wire.packet import build, int_to_ip, parse

TESTBED = ipaddress.IPv4Network("198.18.0.0/15")
MACS = {"src": "00:11:22:33:44:55", "dst": "66:77:88:99:aa:bb"}  # set: no ARP lookups
T0 = 1_700_000_000


def eth(*layers):
    pkt = Ether(**MACS)
    for layer in layers:
        pkt = pkt / layer
    return pkt


def timed(packets, step=0.125):
    """``packets`` stamped T0, T0 + step, ... (steps exact in binary and in µs)."""
    for i, pkt in enumerate(packets):
        pkt.time = T0 + i * step
    return packets


def l3_packets():
    """IPv4 packets: two TCP directions, UDP (one without checksum), options, ICMP, and a
    source already in the testbed's range."""
    return [
        IP(src="10.1.2.3", dst="192.0.2.7") / TCP(sport=40000, dport=80, flags="S"),
        IP(src="192.0.2.7", dst="10.1.2.3") / TCP(sport=80, dport=40000, flags="SA"),
        IP(src="10.1.2.3", dst="192.0.2.7") / TCP(sport=40000, dport=80, flags="A") / (b"x" * 30),
        IP(src="10.9.9.9", dst="192.0.2.53") / UDP(sport=5353, dport=53) / b"query",
        IP(src="10.9.9.9", dst="192.0.2.53") / UDP(sport=5353, dport=53, chksum=0) / b"nocsum",
        IP(src="10.1.2.3", dst="192.0.2.7", options=[IPOption_RR()])
        / TCP(sport=40000, dport=80, flags="A") / b"opts",
        IP(src="203.0.113.5", dst="10.1.2.3") / ICMP() / b"ping",
        IP(src="198.19.1.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / b"inside",
        IP(src="10.1.2.3", dst="192.0.2.7") / TCP(sport=40000, dport=80, flags="FA"),
    ]


def mixed_packets():
    """An Ethernet capture: the IPv4 packets, tagged ones, fragments, and frames to skip."""
    first, second = fragment(
        IP(src="10.7.7.7", dst="192.0.2.7", id=99) / UDP(sport=7, dport=9) / (b"f" * 64),
        fragsize=48)
    return timed(
        [eth(p) for p in l3_packets()]
        + [
            eth(Dot1Q(vlan=7), IP(src="10.1.2.3", dst="192.0.2.99"), UDP(sport=9, dport=99)),
            eth(Dot1AD(vlan=5), Dot1Q(vlan=7), IP(src="10.1.2.3", dst="192.0.2.99"),
                TCP(sport=9, dport=99)),
            eth(first),
            eth(second),
            eth(IPv6(src="2001:db8::1", dst="2001:db8::2"), UDP()),
            eth(IPv6(src="2001:db8::1", dst="2001:db8::3"), TCP()),
            eth(ARP(psrc="10.1.2.3", pdst="10.1.2.4")),
            Ether(type=0x88CC, **MACS) / Raw(b"\x02\x07lldp-ish" + bytes(40)),
            Ether(type=0x0800, **MACS) / Raw(b"\x43" + bytes(40)),  # IHL 3: bad_ip
        ])


SKIPPED = {"arp": 1, "ipv6": 2, "malformed_ipv4:bad_ip": 1, "other_ethertype": 1}


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "mixed.pcap"
    wrpcap(str(path), mixed_packets())
    return path


@pytest.fixture
def imported(tmp_path, capture):
    out, csv = tmp_path / "out.pcap", tmp_path / "map.csv"
    summary = tf.import_trace(capture, out, csv)
    return summary, tf.read_pcap(out), csv


def mapping_of(csv) -> dict[str, str]:
    lines = csv.read_text().splitlines()
    assert lines[0] == "original,testbed"
    return dict(line.split(",") for line in lines[1:])


def flows(packets) -> Counter:
    return Counter((p.src, p.dst, p.proto, p.sport, p.dport) for p in packets)


# --- import ---------------------------------------------------------------------------------


def test_import_keeps_ipv4_and_counts_the_rest_by_reason(imported):
    summary, frames, _csv = imported
    total = len(mixed_packets())
    assert summary.packets_read == total
    assert summary.skipped == SKIPPED
    assert summary.ipv4_kept == len(frames) == total - sum(SKIPPED.values())
    assert summary.protocols == {"tcp": 6, "udp": 6, "other": 1}  # ICMP
    assert summary.duration_s == pytest.approx((total - 1) * 0.125)


def test_every_kept_frame_parses_in_range_with_the_testbed_macs(imported):
    _summary, frames, _csv = imported
    defaults = inspect.signature(build).parameters
    for frame in frames:
        pkt = parse(frame)
        assert ipaddress.IPv4Address(pkt.src) in TESTBED
        assert ipaddress.IPv4Address(pkt.dst) in TESTBED
        assert Ether(frame).src == defaults["src_mac"].default == tf.SRC_MAC
        assert Ether(frame).dst == defaults["dst_mac"].default == tf.DST_MAC
        assert frame[12:14] == b"\x08\x00"  # VLAN tags are gone


def test_addresses_map_one_to_one_in_order_of_first_appearance(imported, capture, tmp_path):
    summary, _frames, csv = imported
    mapping = mapping_of(csv)
    assert list(mapping) == ["10.1.2.3", "192.0.2.7", "10.9.9.9", "192.0.2.53",
                             "203.0.113.5", "198.19.1.1", "192.0.2.99", "10.7.7.7"]
    assert list(mapping.values()) == [f"198.18.0.{i}" for i in range(len(mapping))]
    assert len(set(mapping.values())) == len(mapping) == summary.addresses
    # One rule for all: an address already in the range is remapped too.
    assert mapping["198.19.1.1"] == "198.18.0.5" and mapping["10.1.2.3"] == "198.18.0.0"
    # Stable: the same capture maps the same way, byte for byte.
    again = tmp_path / "again.pcap"
    tf.import_trace(capture, again)
    assert again.read_bytes() == (tmp_path / "out.pcap").read_bytes()


def test_flows_and_their_packet_counts_are_kept(imported):
    summary, frames, csv = imported
    mapping = mapping_of(csv)
    original = []
    for pkt in mixed_packets():
        if IP not in pkt:  # IPv6, ARP, LLDP, and the malformed one (built as Raw)
            continue
        ip = pkt[IP]
        # As sequencer.wire.packet.parse reads them: a fragment's first bytes are its "ports" too.
        ports = struct.unpack("!HH", raw(ip.payload)[:4]) if ip.proto in (6, 17) else (0, 0)
        original.append((mapping[ip.src], mapping[ip.dst], ip.proto, *ports))
    got = Counter((int_to_ip(s), int_to_ip(d), p, sp, dp)
                  for s, d, p, sp, dp in flows(parse(f) for f in frames).elements())
    assert got == Counter(original)
    assert summary.flows == len(got)
    top, count = got.most_common(1)[0]
    assert summary.top_flow_share == pytest.approx(count / len(frames))
    assert summary.top_flows[0]["packets"] == count
    assert (summary.top_flows[0]["src"], summary.top_flows[0]["dst"]) == top[:2]


def scapy_checksum(frame: bytes, layer) -> tuple[int, int]:
    """``layer``'s checksum in ``frame`` and the one Scapy computes for it."""
    pkt = Ether(frame)
    got = pkt[layer].chksum
    del pkt[layer].chksum
    return got, Ether(raw(pkt))[layer].chksum


def test_checksums_verify(imported):
    _summary, frames, _csv = imported
    checked = Counter()
    for frame in frames:
        pkt = Ether(frame)
        got, want = scapy_checksum(frame, IP)
        assert got == want
        if pkt[IP].flags.MF or pkt[IP].frag:
            continue  # the L4 checksum covers the whole datagram: checked reassembled below
        for layer in (TCP, UDP, ICMP):
            if layer in pkt:
                got, want = scapy_checksum(frame, layer)
                if layer is UDP and got == 0:
                    continue  # no checksum: test_udp_checksum_zero_stays_zero
                assert got == want, pkt.summary()
                checked[layer.__name__] += 1
    assert checked == {"TCP": 6, "UDP": 3, "ICMP": 1}
    whole = [p for p in defragment([Ether(f)[IP] for f in frames]) if p.id == 99]
    assert len(whole) == 1 and UDP in whole[0]
    got = whole[0][UDP].chksum
    del whole[0][UDP].chksum
    assert IP(raw(whole[0]))[UDP].chksum == got


def test_udp_checksum_zero_stays_zero(imported):
    _summary, frames, _csv = imported
    zero = [f for f in frames if f.endswith(b"nocsum")]
    assert len(zero) == 1 and Ether(zero[0])[UDP].chksum == 0


@pytest.mark.parametrize("keep", [34 + 18, 34 + 20, 34 + 25, 34 + 8])
def test_checksums_of_frames_cut_by_a_snap_length(tmp_path, keep):
    """The captured bytes end inside the TCP payload: the checksum must be the one of the
    whole packet with the new addresses, never one recomputed from what was captured. (Cut
    inside the TCP header, sequencer.wire.packet.parse refuses the frame.)"""
    whole = eth(IP(src="10.1.2.3", dst="192.0.2.7") / TCP(sport=1, dport=2) / (b"p" * 100))
    data = raw(whole)
    path = tmp_path / "snap.pcap"
    with RawPcapWriter(str(path), linktype=1, snaplen=keep) as writer:
        writer.write_header(None)
        writer.write_packet(data[:keep], sec=T0, usec=0, wirelen=len(data))
    out = tmp_path / "out.pcap"
    if keep < 34 + 20:  # the TCP header is cut: sequencer.wire.packet.parse refuses it
        with pytest.raises(tf.TraceError, match="no IPv4 packets to import"):
            tf.import_trace(path, out)
        return
    tf.import_trace(path, out)
    (frame,) = tf.read_pcap(out)
    assert len(frame) == keep
    expected = whole.copy()
    expected[IP].src, expected[IP].dst = "198.18.0.0", "198.18.0.1"
    del expected[IP].chksum, expected[TCP].chksum
    expected = Ether(raw(expected))
    assert Ether(frame)[TCP].chksum == expected[TCP].chksum
    assert Ether(frame)[IP].chksum == expected[IP].chksum


# --- formats and link types -----------------------------------------------------------------


def write_raw(path, linktype, datas, endianness="<", nano=False):
    with RawPcapWriter(str(path), linktype=linktype, endianness=endianness,
                       nano=nano) as writer:
        writer.linktype = linktype  # the constructor ignores a linktype of 0 (falsy)
        writer.write_header(None)
        for i, data in enumerate(datas):
            ns = int((T0 + Decimal(i) / 8) * 10**9)
            sec, frac = divmod(ns, 10**9)
            writer.write_packet(data, sec=sec, usec=frac if nano else frac // 1000)


def ether_frames():
    return [raw(p) for p in mixed_packets()]


def written(tmp_path, how: str):
    path = tmp_path / f"in-{how}"
    packets = mixed_packets()
    if how == "wrpcap":
        wrpcap(str(path), packets)
    elif how == "wrpcapng":
        wrpcapng(str(path), packets)
    elif how == "PcapNgWriter":
        with PcapNgWriter(str(path)) as writer:
            writer.write(packets)
    elif how == "big-endian":
        write_raw(path, 1, ether_frames(), endianness=">")
    elif how == "nanosecond":
        write_raw(path, 1, ether_frames(), nano=True)
    elif how == "gzip":
        wrpcap(str(path), packets, gz=True)
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    return path


FORMATS = ["wrpcap", "wrpcapng", "PcapNgWriter", "big-endian", "nanosecond", "gzip"]


@pytest.mark.parametrize("how", FORMATS)
def test_every_format_gives_the_same_trace(tmp_path, how):
    reference = tmp_path / "ref.pcap"
    tf.import_trace(written(tmp_path, "wrpcap"), reference)
    out = tmp_path / "out.pcap"
    summary = tf.import_trace(written(tmp_path, how), out)
    assert out.read_bytes() == reference.read_bytes()
    assert summary.skipped == SKIPPED
    capture = tf.read_capture(written(tmp_path, how))
    assert capture.format == ("pcapng" if "ng" in how.lower() else "pcap")
    assert [ts for ts, _lt, _d in capture.records] == [
        T0 * 10**9 + i * 125_000_000 for i in range(len(capture.records))]


def l3_as(linktype: int) -> list[bytes]:
    """The IPv4 packets, as records of ``linktype`` (with one IPv6 packet to skip)."""
    l3 = [raw(p) for p in l3_packets()] + [raw(IPv6(src="2001:db8::1") / UDP())]
    if linktype in (12, 101, 228):
        return l3
    if linktype == 113:
        return [raw(CookedLinux(proto=0x86DD if d[0] >> 4 == 6 else 0x0800)) + d for d in l3]
    if linktype == 276:
        return [raw(CookedLinuxV2(proto=0x86DD if d[0] >> 4 == 6 else 0x0800)) + d
                for d in l3]
    if linktype == 0:  # host byte order (Scapy's Loopback), and once big-endian
        families = [raw(Loopback(type=24 if d[0] >> 4 == 6 else 2)) for d in l3]
        families[1] = struct.pack("!I", 2)
        return [f + d for f, d in zip(families, l3, strict=True)]
    if linktype == 108:  # network byte order
        return [struct.pack("!I", 24 if d[0] >> 4 == 6 else 2) + d for d in l3]
    return [raw(eth(IP(d) if d[0] >> 4 == 4 else IPv6(d))) for d in l3]


@pytest.mark.parametrize("linktype", [1, 0, 12, 101, 108, 113, 228, 276])
def test_every_link_type_gives_the_same_trace(tmp_path, linktype):
    reference, out = tmp_path / "ref.pcap", tmp_path / "out.pcap"
    write_raw(tmp_path / "eth.pcap", 1, l3_as(1))
    tf.import_trace(tmp_path / "eth.pcap", reference)
    write_raw(tmp_path / "in.pcap", linktype, l3_as(linktype))
    summary = tf.import_trace(tmp_path / "in.pcap", out)
    assert summary.skipped == {"ipv6": 1}
    assert out.read_bytes() == reference.read_bytes()


def test_scapy_layers_write_the_link_types_we_read(tmp_path):
    """The link types Scapy itself writes for raw IP, cooked and loopback packets."""
    for pkt, linktype in [(IP(src="10.0.0.1") / UDP(), 228),
                          (CookedLinux(proto=0x0800) / IP(src="10.0.0.1") / UDP(), 113),
                          (CookedLinuxV2(proto=0x0800) / IP(src="10.0.0.1") / UDP(), 276),
                          (Loopback(type=2) / IP(src="10.0.0.1") / UDP(), 0)]:
        path = tmp_path / f"{linktype}.pcap"
        wrpcap(str(path), [pkt])
        assert tf.read_capture(path).linktypes == [linktype]
        summary = tf.import_trace(path, tmp_path / "out.pcap")
        assert summary.ipv4_kept == 1 and summary.protocols["udp"] == 1


def test_pcapng_with_interfaces_of_several_link_types(tmp_path):
    path = tmp_path / "multi.pcapng"
    a = eth(IP(src="10.1.2.3", dst="192.0.2.7") / TCP())
    b = IP(src="192.0.2.7", dst="10.1.2.3") / UDP()
    c = CookedLinux(proto=0x0800) / IP(src="10.1.2.3", dst="192.0.2.8") / UDP()
    for pkt, iface in ((a, "eth0"), (b, "tun0"), (c, "any")):
        pkt.sniffed_on = iface
    with PcapNgWriter(str(path)) as writer:
        writer.write_header(a)
        for pkt in timed([a, b, c, a.copy()]):  # write() would warn of the mixed link types
            writer.write_packet(pkt)
    capture = tf.read_capture(path)
    assert capture.format == "pcapng"
    assert capture.linktypes == [1, 228, 113]
    assert [lt for _ts, lt, _d in capture.records] == [1, 228, 113, 1]
    summary = tf.import_trace(path, tmp_path / "out.pcap")
    assert summary.ipv4_kept == 4 and summary.addresses == 3
    with pytest.raises(tf.TraceError, match=r"has link type 228 \(raw IPv4\), not Ethernet"):
        tf.read_pcap(path)


# --- timestamps -----------------------------------------------------------------------------


def test_write_pcap_round_trips_nanoseconds(tmp_path):
    path = tmp_path / "ns.pcap"
    frames = [raw(p) for p in mixed_packets()[:4]]
    stamps = [T0 * 10**9 + 1, T0 * 10**9 + 999_999_999, (T0 + 7) * 10**9 + 123_456_789, 5]
    tf.write_pcap(path, frames, timestamps_ns=stamps)
    assert path.read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D)
    capture = tf.read_capture(path)
    assert [(ts, lt, d) for ts, lt, d in capture.records] == [
        (ts, 1, f) for ts, f in zip(stamps, frames, strict=True)]
    # Scapy's own reader agrees, to the nanosecond.
    assert [p.time for p in rdpcap(str(path))] == [Decimal(ts) / 10**9 for ts in stamps]
    with RawPcapReader(str(path)) as reader:
        assert reader.nano
    assert tf.read_pcap(path) == frames


def test_write_pcap_rejects_mismatched_or_unwritable_stamps(tmp_path):
    with pytest.raises(ValueError, match="2 timestamps for 1 frames"):
        tf.write_pcap(tmp_path / "x.pcap", [b"a"], timestamps_ns=[1, 2])
    with pytest.raises(ValueError, match="32-bit"):
        tf.write_pcap(tmp_path / "x.pcap", [b"a"], timestamps_ns=[-1])
    with pytest.raises(ValueError, match="rate_pps"):
        tf.write_pcap(tmp_path / "x.pcap", [b"a"], rate_pps=0)


@pytest.mark.parametrize("tsresol, ticks_per_s", [(6, 10**6), (9, 10**9), (0x94, 2**20)])
def test_pcapng_if_tsresol(tmp_path, tsresol, ticks_per_s):
    """pcapng stamps count ticks of the interface's ``if_tsresol``: 10^-k or 2^-k s."""

    class Writer(RawPcapNgWriter):
        def _write_block_idb(self, linktype, ifname=None):
            body = struct.pack("<HHI", linktype, 0, 262144)
            options = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
            self.f.write(self.build_block(struct.pack("<I", 1), body, options=options))

    path = tmp_path / "res.pcapng"
    ticks = [T0 * ticks_per_s + 1, T0 * ticks_per_s + ticks_per_s - 1]
    with Writer(str(path)) as writer:
        writer.linktype = 1
        writer.tsresol = ticks_per_s
        writer.write_header(None)
        for tick in ticks:
            writer.write_packet(raw(mixed_packets()[0]), sec=Decimal(tick) / ticks_per_s)
    got = [ts for ts, _lt, _d in tf.read_capture(path).records]
    assert got == [tick * 10**9 // ticks_per_s for tick in ticks]


def test_imported_stamps_keep_the_original_timing_in_microseconds(tmp_path):
    path = tmp_path / "ns.pcap"
    frames = [raw(p) for p in mixed_packets()[:3]]
    tf.write_pcap(path, frames, timestamps_ns=[T0 * 10**9 + 1_999, T0 * 10**9 + 5_000, 10**10])
    out = tmp_path / "out.pcap"
    tf.import_trace(path, out)
    assert out.read_bytes()[:4] == struct.pack("<I", 0xA1B2C3D4)  # classic µs pcap
    assert [ts for ts, _lt, _d in tf.read_capture(out).records] == [
        T0 * 10**9 + 1_000, T0 * 10**9 + 5_000, 10**10]


# --- bad files ------------------------------------------------------------------------------


def good_pcap(tmp_path) -> bytes:
    path = tmp_path / "good.pcap"
    wrpcap(str(path), mixed_packets()[:3])
    return path.read_bytes()


def good_pcapng(tmp_path) -> bytes:
    path = tmp_path / "good.pcapng"
    wrpcapng(str(path), mixed_packets()[:3])
    return path.read_bytes()


def bad_files(tmp_path) -> dict[str, tuple[bytes, str]]:
    pcap, ng = good_pcap(tmp_path), good_pcapng(tmp_path)
    header_only = pcap[:24]
    huge = header_only + struct.pack("<IIII", 0, 0, 300_000, 300_000) + bytes(300_000)
    bad_interface = bytearray(ng)
    # The first packet block follows the SHB (28 bytes) and the IDB (20): interface id 5.
    struct.pack_into("<I", bad_interface, 28 + 20 + 8, 5)
    bad_trailer = bytearray(ng)
    bad_trailer[-4:] = b"\xff\xff\x00\x00"  # the last block's closing length
    return {
        "empty": (b"", "is empty, not a pcap or pcapng file"),
        "three bytes": (pcap[:3], "is not a pcap or pcapng file (only 3 bytes)"),
        "text": (b"this is not a capture\n" * 3,
                 "is not a pcap or pcapng file (magic 74686973)"),
        "gif": (b"GIF89a" + bytes(40), "is not a pcap or pcapng file (magic 47494638)"),
        "pcap header cut": (pcap[:20], "is truncated in its pcap file header"),
        "pcapng header cut": (ng[:20], "is truncated in its pcapng section header"),
        "pcap record cut": (pcap[:-5], "is truncated in record 2"),
        "pcap record header cut": (pcap[:24 + 8], "is truncated in record 0"),
        "pcapng record cut": (ng[:-5], "is truncated in record 2"),
        "pcapng cut in a block's type": (ng + b"\x06\x00", "is truncated in record 3"),
        "pcapng cut after a block's type": (ng + b"\x06\x00\x00\x00",
                                            "is truncated in record 3"),
        "no packets (pcap)": (header_only, "has no packets"),
        "no packets (pcapng)": (ng[:48], "has no packets"),
        "record too long": (huge, "has a record longer than 262144 bytes (record 0)"),
        "bad interface id": (bytes(bad_interface),
                             "is corrupt in record 0 (invalid interface id 5/1)"),
        "bad block trailer": (bytes(bad_trailer), "is corrupt in record 2 (bad block length)"),
        "gzip cut": (gzip.compress(pcap)[:-10], "is a truncated or corrupt gzip file "
                     "(Compressed file ended before the end-of-stream marker was reached)"),
    }


def one_line_error(call, path, capfd) -> str:
    with pytest.raises(tf.TraceError) as info:
        call(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and str(path) in message
    assert capfd.readouterr() == ("", "")  # no Scapy warning, no traceback
    return message


def test_bad_files_are_one_line_trace_errors(tmp_path, capfd):
    for name, (data, message) in bad_files(tmp_path).items():
        path = tmp_path / (name.replace(" ", "-") + ".pcap")
        path.write_bytes(data)
        for call in (tf.read_capture, tf.read_pcap, lambda p: tf.import_trace(p, tmp_path / "o")):
            assert one_line_error(call, path, capfd) == f"{path} {message}", name
        with pytest.raises(tf.TraceError) as info:
            tf.parse_pcap(data, "bytes.pcap")
        assert str(info.value) == f"bytes.pcap {message}", name


def test_missing_directory_and_unreadable(tmp_path, capfd):
    missing = tmp_path / "nope.pcap"
    assert one_line_error(tf.read_capture, missing, capfd) == (
        f"cannot read trace {missing}: No such file or directory")
    assert one_line_error(tf.read_pcap, tmp_path, capfd) == (
        f"cannot read trace {tmp_path}: Is a directory")


def test_every_cut_of_a_capture_is_an_error(tmp_path):
    """Wherever a file is cut, it reads whole records or says it is truncated."""
    for data in (good_pcap(tmp_path), good_pcapng(tmp_path)):
        ends = set()
        for cut in range(len(data)):
            try:
                ends.add(len(tf.parse_pcap(data[:cut], "cut")))
            except tf.TraceError as err:
                assert "truncated" in str(err) or "no packets" in str(err) or cut < 4, cut
        assert ends == {1, 2}  # cut exactly between records
        assert len(tf.parse_pcap(data, "whole")) == 3


def test_import_refusals(tmp_path, capfd, monkeypatch):
    wifi = tmp_path / "wifi.pcap"
    write_raw(wifi, 105, [bytes(30)])
    assert one_line_error(lambda p: tf.import_trace(p, tmp_path / "o.pcap"), wifi, capfd) == (
        f"{wifi} has link type 105 (IEEE 802.11), which cannot be imported "
        "(supported: 0, 1, 12, 101, 108, 113, 228, 276)")
    assert one_line_error(tf.read_pcap, wifi, capfd) == (
        f"{wifi} has link type 105 (IEEE 802.11), not Ethernet: import it with "
        "python -m experiments.workload.trace_files")
    no_ipv4 = tmp_path / "v6.pcap"
    wrpcap(str(no_ipv4), [p for p in mixed_packets() if IPv6 in p or ARP in p])
    assert one_line_error(lambda p: tf.import_trace(p, tmp_path / "o.pcap"), no_ipv4,
                          capfd) == f"{no_ipv4} has no IPv4 packets to import (arp 1, ipv6 2)"
    monkeypatch.setattr(tf, "TESTBED_ADDRESSES", 3)
    many = tmp_path / "many.pcap"
    wrpcap(str(many), mixed_packets())
    assert one_line_error(lambda p: tf.import_trace(p, tmp_path / "o.pcap"), many,
                          capfd) == (f"{many} has more than 3 distinct IPv4 addresses, more "
                                     "than 198.18.0.0/15 holds")
    assert not (tmp_path / "o.pcap").exists()


def test_unwritable_destination(tmp_path, capture):
    with pytest.raises(tf.TraceError, match="cannot write .*nodir.*No such file"):
        tf.import_trace(capture, tmp_path / "nodir" / "out.pcap")


# --- summaries and the command line ---------------------------------------------------------


def test_summary_of_a_synthetic_trace():
    spec = traffic.TraceSpec(packets=2_000, flows=50, skew=1.2, attackers=0, knockers=0,
                             bad_seq_share=0)
    frames = traffic.make_trace(spec)
    summary = tf.summarize(frames)
    assert summary.packets_read == summary.ipv4_kept == 2_000
    assert summary.skipped == {}
    assert summary.flows == 50 and summary.addresses == 51  # 50 sources, one server
    assert summary.protocols == {"tcp": 2_000, "udp": 0, "other": 0}
    assert summary.top_flow_share == pytest.approx(traffic.flow_shares(50, 1.2)[0], abs=0.03)
    assert summary.top_flows[0]["src"] == "198.18.0.0"
    assert summary.mean_frame_bytes == 64 and summary.duration_s == 0
    assert tf.summarize(frames, [i * 1000 for i in range(2_000)]).duration_s == 1999e-6
    json.dumps(summary.to_json())
    table = summary.table()
    assert "IPv4 frames kept" in table and "198.19.255.1" in table


def test_summary_of_frames_that_are_not_ipv4():
    summary = tf.summarize([raw(p) for p in mixed_packets()])
    assert summary.skipped == SKIPPED
    assert tf.summarize([]).top_flow_share == 0


def test_command_line(tmp_path, capture, capsys):
    out = tmp_path / "cli.pcap"
    assert tf.main([str(capture), str(out), "--addresses", str(tmp_path / "m.csv")]) == 0
    assert "top flows" in capsys.readouterr().out
    assert tf.main([str(capture), str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == SKIPPED
    with pytest.raises(SystemExit) as info:
        tf.main([str(tmp_path / "nope"), str(out)])
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"trace_files: cannot read trace {tmp_path / 'nope'}: "
                                       "No such file or directory\n")


def test_traffic_reexports_the_pcap_functions():
    for name in ("TraceError", "read_pcap", "parse_pcap", "write_pcap"):
        assert getattr(traffic, name) is getattr(tf, name)


def test_harmless_scapy_warnings_are_not_errors(tmp_path, capfd):
    """A Decryption Secrets Block (TLS keys, with options) makes Scapy warn twice and read
    on: before the packets or after them, the file is fine, and nothing is printed."""
    ng = good_pcapng(tmp_path)
    secrets = b"CLIENT_RANDOM 00 00\n"
    body = struct.pack("<II", 0x544C534B, len(secrets)) + secrets
    body += struct.pack("<HH", 1, 4) + b"note" + struct.pack("<HH", 0, 0)
    block = struct.pack("<II", 10, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    for data in (ng[:48] + block + ng[48:], ng + block):
        assert len(tf.parse_pcap(data, "tls.pcapng")) == 3
    assert capfd.readouterr() == ("", "")
