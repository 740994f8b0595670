"""The Scapy face of the testbed's Ethernet formats: one layer per format, for dissection,
tests and users poking at pcaps.

============  ===================================  ===================================
layer         format (its ``struct`` codec)        how Scapy finds it
============  ===================================  ===================================
SCR           SCR header + history records         ``Ether`` type 0x88B5; the original
              (:mod:`sequencer.wire.header`)       frame follows as an ``Ether``
SprayCommand  the controller's spray command       ``Ether`` type 0x88B6, magic ``SCRC``
              (:mod:`sequencer.wire.spray`)
Heartbeat     a core's or instance's heartbeat     ``Ether`` type 0x88B6, magic ``SCRH``
              (:mod:`sequencer.wire.heartbeat`)
ScrTrailer    the shard trailer                    not bound: :func:`split_trailer`
              (:mod:`sequencer.wire.trailer`)
============  ===================================  ===================================

Each layer is tested byte for byte against its codec (``tests/unit/sequencer/wire``). The
codecs never import this module: importing Scapy is slow, and the hot-path processes never
need it; import it explicitly (``from sequencer.wire.scapy_layers import SCR``), which also
binds the layers, so that ``Ether(frame)`` decodes the testbed's frames.

Caveats: the spray command and the heartbeat share ethertype 0x88B6, so each layer's
``dispatch_hook`` picks the layer by the 4-byte magic (another magic dissects as the layer
bound first, ``SprayCommand``). The zero padding to the Ethernet minimum that both carry is
not a field: it dissects as Scapy's ``Padding``, and a frame built with Scapy needs an
explicit ``Padding`` to match the codec's 60 bytes. The shard trailer sits after whatever
padding the original frame had, where Scapy sees only ``Padding``: it has no ethertype to
bind a layer to, so :func:`split_trailer` cuts it off by its position.
"""

from __future__ import annotations

from scapy.fields import (
    ByteEnumField,
    ByteField,
    FieldLenField,
    FieldListField,
    FlagsField,
    IntField,
    LongField,
    SignedLongField,
    StrFixedLenField,
    StrLenField,
    XByteField,
    XShortField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from sequencer.wire.header import ETH_P_SCR, MAX_CORES, SCR_MAGIC, SCR_VERSION
from sequencer.wire.heartbeat import ETH_P_HEARTBEAT, HEARTBEAT_MAGIC, HEARTBEAT_VERSION, ROLES
from sequencer.wire.spray import ETH_P_SPRAY, SPRAY_MAGIC
from sequencer.wire.trailer import TRAILER_MAGIC, TRAILER_SIZE


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


def _by_magic(cls, _pkt):
    """The 0x88B6 layer whose magic starts ``_pkt`` (``cls`` if none does)."""
    if _pkt and len(_pkt) >= 4:
        return _LAYERS_BY_MAGIC.get(bytes(_pkt[:4]), cls)
    return cls


class SprayCommand(Packet):
    """Scapy layer of the controller's spray command (its padding dissects as ``Padding``)."""

    name = "SCR spray command"
    fields_desc = [
        StrFixedLenField("magic", SPRAY_MAGIC, 4),
        IntField("epoch", 0),
        FieldLenField("count", None, count_of="cores", fmt="B"),
        FieldListField("cores", [], ByteField("core", 0), count_from=lambda pkt: pkt.count,
                       max_count=MAX_CORES),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        # Scapy calls a dispatch_hook only if the class itself defines it (not inherited).
        return _by_magic(cls, _pkt)

    def extract_padding(self, s):
        return b"", s  # what follows the core ids is the Ethernet padding


class Heartbeat(Packet):
    """Scapy layer of a heartbeat (its padding dissects as ``Padding``)."""

    name = "SCR heartbeat"
    fields_desc = [
        StrFixedLenField("magic", HEARTBEAT_MAGIC, 4),
        ByteField("version", HEARTBEAT_VERSION),
        ByteEnumField("role", 0, ROLES),
        SignedLongField("counter", 0),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        return _by_magic(cls, _pkt)

    def extract_padding(self, s):
        return b"", s


_LAYERS_BY_MAGIC = {SPRAY_MAGIC: SprayCommand, HEARTBEAT_MAGIC: Heartbeat}


class ScrTrailer(Packet):
    """Scapy layer of the shard strategy's 14-byte trailer (see :func:`split_trailer`)."""

    name = "SCR trailer"
    fields_desc = [
        IntField("seq", 0),
        LongField("timestamp_ns", 0),
        XShortField("magic", TRAILER_MAGIC),
    ]


def split_trailer(frame: bytes) -> tuple[Ether, ScrTrailer]:
    """The original frame and the trailer of a shard frame, dissected. Nothing is checked:
    a frame without a trailer gives a trailer of its last bytes (see ``magic``)."""
    return Ether(frame[:-TRAILER_SIZE]), ScrTrailer(frame[-TRAILER_SIZE:])


bind_layers(Ether, SCR, type=ETH_P_SCR)
bind_layers(SCR, Ether)
bind_layers(Ether, SprayCommand, type=ETH_P_SPRAY)
bind_layers(Ether, Heartbeat, type=ETH_P_HEARTBEAT)
