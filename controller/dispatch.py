"""The dispatch app: installs the sequencer node's pipeline on the switch.

For the ``scr`` mode, with the ports of ``topologies.scr_topo.PortPlan``:

=========  ============================================  ==========================
priority   match                                         action
=========  ============================================  ==========================
100        in_port=gen                                   output:shim ingress
100        in_port=shim egress, eth_type=SCR,            output:core i
           eth_src=slot MAC of i       (one per core)
100        in_port=core i, eth_type=IPv4 (one per core)  output:sink
0          anything else                                 drop (counted)
=========  ============================================  ==========================

OVS has no per-packet round-robin (select groups hash), so the shim writes the slot into
the dummy Ethernet source MAC and one exact-match rule per slot does the spraying, as the
paper's artifact steers NIC queues by that MAC. Everything from the generator goes to the
shim, malformed frames too: the shim counts them.

Every rule carries ``COOKIE`` so tests and the trial runner can find them with
``ovs-ofctl dump-flows s1 cookie=0x5c5/-1``. The pipeline (ports, number of cores, mode)
comes from the JSON file named by ``--scr-pipeline``.
"""

from __future__ import annotations

import json

from controller.compat import (
    CONFIG_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    cfg,
    ofp_event,
    ofproto_v1_3,
    set_ev_cls,
)
from sequencer.header import ETH_P_IP, ETH_P_SCR, slot_mac

COOKIE = 0x5C5
PRIORITY_PIPELINE = 100
PRIORITY_DROP = 0
MODES = ("scr",)

cfg.CONF.register_cli_opts(
    [cfg.StrOpt("scr-pipeline", default=None, help="JSON file describing the SCR pipeline")]
)


def expected_flow_count(pipeline: dict) -> int:
    """How many rules ``install_pipeline`` puts on the switch for ``pipeline``."""
    return 1 + 2 * pipeline["n_cores"] + 1


class DispatchApp(BaseApp):
    """Installs the dispatch pipeline when the switch connects."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = cfg.CONF.scr_pipeline
        if not path:
            raise ValueError("the dispatch app needs --scr-pipeline FILE")
        with open(path) as f:
            self.pipeline = json.load(f)
        if self.pipeline.get("mode", "scr") not in MODES:
            raise ValueError(f"unknown mode {self.pipeline.get('mode')!r}")

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev):
        datapath = ev.msg.datapath
        self.install_pipeline(datapath)
        self.logger.info("installed %d rules on datapath %016x",
                         expected_flow_count(self.pipeline), datapath.id)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error_handler(self, ev):
        msg = ev.msg
        self.logger.error("switch error: type=%d code=%d", msg.type, msg.code)

    def install_pipeline(self, datapath) -> None:
        p = self.pipeline
        parser = datapath.ofproto_parser
        self.add_flow(datapath, PRIORITY_PIPELINE, parser.OFPMatch(in_port=p["gen_port"]),
                      p["shim_in_port"])
        for core, port in enumerate(p["core_ports"]):
            self.add_flow(
                datapath,
                PRIORITY_PIPELINE,
                parser.OFPMatch(in_port=p["shim_out_port"], eth_type=ETH_P_SCR,
                                eth_src=slot_mac(core)),
                port,
            )
            self.add_flow(datapath, PRIORITY_PIPELINE,
                          parser.OFPMatch(in_port=port, eth_type=ETH_P_IP), p["sink_port"])
        self.add_flow(datapath, PRIORITY_DROP, parser.OFPMatch(), None)

    @staticmethod
    def add_flow(datapath, priority: int, match, out_port: int | None) -> None:
        """One rule: ``match`` -> output to ``out_port`` (None: drop)."""
        ofproto, parser = datapath.ofproto, datapath.ofproto_parser
        actions = [] if out_port is None else [parser.OFPActionOutput(out_port)]
        instructions = [parser.OFPInstructionActions(ofproto.OFPIT_APPLY_ACTIONS, actions)]
        datapath.send_msg(
            parser.OFPFlowMod(datapath=datapath, cookie=COOKIE, priority=priority,
                              match=match, instructions=instructions)
        )
