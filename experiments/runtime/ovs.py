"""Open vSwitch helpers for the testbed: the controller's rules and groups on the switch,
ovs-vswitchd's pid, and quieting the switch-side ports.

Everything here runs the OVS command-line tools (``ovs-ofctl``) or reads OVS's pid file in
the root namespace, so it needs root and a running ``ovs-vswitchd``; the callers are the
testbed, the live tests and the data-path benchmark.

Caveat: :func:`pipeline_groups` asks with OpenFlow 1.5 (to see the selection method) and
does not fail when the switch is gone (an empty list); :func:`ovs_ofctl` does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from controller.dispatch import COOKIE
from topologies.scr_topo import SWITCH

OVS_PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")


def quiet_switch_ports(switches) -> None:
    """Turn IPv6 off on the switch-side veth ends (root namespace), ours alone.

    The root kernel would otherwise send router solicitations and MLD reports out of them
    for a few seconds, and OVS's socket on the port reads those as traffic from the host.
    """
    names = [intf.name for sw in switches for intf in sw.intfList() if intf.name != "lo"]
    subprocess.run(["sysctl", "-qw", *(f"net.ipv6.conf.{n}.disable_ipv6=1" for n in names)],
                   check=False, capture_output=True)


def ovs_ofctl(*args: str) -> str:
    """``ovs-ofctl -O OpenFlow13 ARGS``'s output; CalledProcessError if it fails."""
    result = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args],
                            capture_output=True, text=True, check=True)
    return result.stdout


def pipeline_flows(switch: str = SWITCH) -> list[str]:
    """The controller's rules on ``switch`` (one ``dump-flows`` line each)."""
    out = ovs_ofctl("dump-flows", switch, f"cookie={COOKIE:#x}/-1")
    return [line.strip() for line in out.splitlines() if "cookie=" in line]


def pipeline_groups(switch: str = SWITCH) -> list[str]:
    """The groups on ``switch`` (one ``dump-groups`` line each; OpenFlow 1.5 shows the
    selection method)."""
    result = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-groups", switch],
                            capture_output=True, text=True, check=False)
    return [line.strip() for line in result.stdout.splitlines() if "group_id=" in line]


def ovs_pid() -> int | None:
    """ovs-vswitchd's pid, from its pid file; None if it is not running or unreadable."""
    try:
        return int(OVS_PIDFILE.read_text())
    except (OSError, ValueError):
        return None
