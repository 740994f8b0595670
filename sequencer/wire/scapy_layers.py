"""The Scapy face of the SCR wire format (see ``sequencer.wire.header`` for the layout).

``SCR`` dissects and builds the SCR header and its history records; binding it to the
experimental ethertype makes ``Ether(frame)`` decode SCR frames, and the original frame that
follows. Tests check it byte for byte against the ``struct`` codec in ``sequencer.wire.header``.
It lives in its own module because importing Scapy is slow, and the hot-path processes never
need it; ``sequencer.wire.header.SCR`` loads it on first use.
"""

from __future__ import annotations

from scapy.fields import (
    ByteField,
    FieldLenField,
    FieldListField,
    FlagsField,
    IntField,
    LongField,
    StrLenField,
    XByteField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from sequencer.wire.header import ETH_P_SCR, MAX_CORES, SCR_MAGIC, SCR_VERSION


class SCR(Packet):
    """Scapy layer of the SCR header and its history records (opaque byte strings)."""

    name = "SCR"
    fields_desc = [
        XByteField("magic", SCR_MAGIC),
        ByteField("version", SCR_VERSION),
        FlagsField("flags", 0, 8, ["STOP"]),
        FieldLenField("count", None, count_of="history", fmt="B"),
        ByteField("record_size", 0),
        ByteField("slot", 0),
        ByteField("n_cores", 1),
        ByteField("spray", 1),
        IntField("seq", 0),
        LongField("timestamp_ns", 0),
        FieldListField(
            "history",
            [],
            StrLenField("record", b"", length_from=lambda pkt: pkt.record_size),
            count_from=lambda pkt: pkt.count,
            max_count=MAX_CORES,  # Scapy's default cap (100) is below what the format allows
        ),
    ]


bind_layers(Ether, SCR, type=ETH_P_SCR)
bind_layers(SCR, Ether)
