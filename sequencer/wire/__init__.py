"""The byte formats the testbed speaks, one module per format.

Each module is a ``struct`` codec (pack/unpack functions that raise the format's one-line
error) with no dependency above this package; the formats that travel in Ethernet frames
also have a Scapy layer in :mod:`sequencer.wire.scapy_layers`, tested byte for byte against
the codec (``tests/unit/sequencer/wire``).

Format (module; Scapy layer): where it travels.

* SCR header + history records, and the Ethernet/MAC basics and ``MalformedFrame`` the
  other frame formats share (``header``; ``SCR``): shim -> cores, ethertype 0x88B5 behind
  a dummy Ethernet header whose source MAC names the core slot; also the STOP frames and
  the generator's end-of-trace marker.
* The shard trailer (``trailer``; ``ScrTrailer``, unbound): shim -> cores in the ``shard``
  strategy, the last 14 bytes of an otherwise unchanged IPv4 frame.
* The spray command (``spray``; ``SprayCommand``): controller -> shim by packet-out,
  ethertype 0x88B6, magic ``SCRC``.
* The heartbeat (``heartbeat``; ``Heartbeat``): cores and primary/backup instances ->
  controller, ethertype 0x88B6, magic ``SCRH``.
* IPv4/TCP/UDP frames (``packet``; Scapy's own layers): generator -> shim -> cores -> sink.
* The primary-backup log (``pb_log``; no layer, not Ethernet): primary <-> backup, one TCP
  connection on the NF host's loopback.
* The peer record log (``peer_log``; no layer): the cores' record rings, files in
  ``/dev/shm`` every core reads, and the snapshots a replacement core gets over TCP on the
  loopback.
* The state-service protocol (``state_service``; no layer): store cores <-> the state
  service, TCP on the loopback.
* pcap files (``pcap``; Scapy's writer): on disk, the shim's ground truth and the traces.

Rules that keep the hot paths fast and the layers clean: no codec imports Scapy or
``scapy_layers`` (importing Scapy costs a process ~0.7 s of CPU; ``pcap`` imports it only
when it writes); nothing here imports ``nfs``, ``controller``, ``experiments`` or
``topologies``: the NF-dependent parts (record, key and value layouts) are handed in as an
object with the NF's ``struct`` formats.

Caveat: 0x88B5 and 0x88B6 are IEEE 802's two local experimental ethertypes, the only ones
free for this; the spray command and the heartbeat share the second and are told apart by
their magic (they also never take the same path through the switch).
"""
