"""Open vSwitch helpers for the testbed: the controller's rules and groups on the switch,
ovs-vswitchd's pid, quieting the switch-side ports, and their port type (AF_XDP or not).

Everything here runs the OVS command-line tools (``ovs-ofctl``) or reads OVS's pid file in
the root namespace, so it needs root and a running ``ovs-vswitchd``; the callers are the
testbed, the live tests and the data-path benchmark.

Caveat: :func:`pipeline_groups` asks with OpenFlow 1.5 (to see the selection method) and
does not fail when the switch is gone (an empty list); :func:`ovs_ofctl` does.
"""

from __future__ import annotations

import csv
import subprocess
import time
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


#: The switch ports' types a trial may ask for: ``auto`` takes ``afxdp-nonpmd`` where OVS
#: and the kernel allow it and falls back to ``system`` (a packet socket per port) where
#: not; the others are taken as they are, and fail the trial if refused.
#: ``afxdp-nonpmd`` costs OVS 15-60 % less CPU per hop than ``system`` here (the
#: datapath benchmark, ``experiments/bench_datapath.py``): frames go from the veth's XDP
#: program to a ring OVS reads, not through the root namespace's network stack and a
#: packet socket. The PMD type ``afxdp`` busy-polls a whole CPU, which a 2-CPU machine
#: cannot give, so it is not offered here.
PORT_TYPES = ("auto", "system", "afxdp-nonpmd")
AFXDP = "afxdp-nonpmd"
XDP_MODE = "native"
PORT_TYPE_TIMEOUT_S = 10.0


class PortTypeError(RuntimeError):
    """OVS refused a port type, or the ports did not come up with it; the message says why."""


def vsctl(*args: str) -> str:
    """``ovs-vsctl ARGS``'s output; CalledProcessError if it fails."""
    return subprocess.run(["ovs-vsctl", "--timeout=10", *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def iface_types() -> list[str]:
    """The interface types this OVS offers (empty if it cannot be asked)."""
    try:
        out = vsctl("get", "Open_vSwitch", ".", "iface_types")
    except (OSError, subprocess.CalledProcessError):
        return []
    return [t.strip() for t in out.strip("[]").split(",") if t.strip()]


def set_port_type(ports: list[str], port_type: str,
                  timeout: float = PORT_TYPE_TIMEOUT_S) -> None:
    """Give every interface in ``ports`` the type ``port_type`` and wait until each is up
    with an OpenFlow port number (Mininet's ``ofport_request`` keeps the numbers, so the
    controller's rules still hold); PortTypeError with OVS's reason if it cannot."""
    if not ports:
        return
    # Native XDP (veth has it since Linux 4.19): "best-effort", OVS's default, tries
    # zero-copy first, which veth lacks, and takes half again as long to come up.
    options = (f"options:xdp-mode={XDP_MODE}",) if port_type.startswith("afxdp") else ()
    try:
        vsctl(*[arg for port in ports
                for arg in ("--", "set", "Interface", port, f"type={port_type}", *options)])
    except subprocess.CalledProcessError as err:
        raise PortTypeError(f"ovs-vsctl refused type={port_type}: "
                            f"{err.stderr.strip()}") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = vsctl("--format=csv", "--data=bare", "--no-headings",
                         "--columns=name,error,ofport", "list", "Interface", *ports)
        except subprocess.CalledProcessError as err:
            raise PortTypeError(f"cannot read the ports back: {err.stderr.strip()}") from None
        state = {name: (error, ofport) for name, error, ofport in csv.reader(rows.splitlines())}
        bad = {port: error for port, (error, _) in state.items() if error}
        if bad:
            raise PortTypeError("; ".join(f"{p}: {e}" for p, e in sorted(bad.items())))
        if all(o.lstrip("-").isdigit() and int(o) > 0 for _, o in state.values()):
            return
        if time.monotonic() > deadline:
            raise PortTypeError(f"ports did not come up as {port_type} within "
                                f"{timeout:g} s")
        time.sleep(0.05)


def _not_offered() -> str:
    """Why this OVS cannot make AF_XDP ports at all ("" if it offers the type)."""
    return "" if AFXDP in iface_types() else f"this Open vSwitch offers no {AFXDP} interfaces"


def afxdp_unavailable() -> str:
    """Why ``auto`` will not use AF_XDP ports, as far as is known without trying ("" if it
    will try; whether the kernel lets them come up is only known by trying)."""
    return _not_offered() or _afxdp_failed


_afxdp_failed = ""  # auto: why AF_XDP ports failed to come up here once (then not retried)


def use_port_type(ports: list[str], wanted: str) -> tuple[str, str]:
    """Give the switch's ``ports`` the type ``wanted`` (``PORT_TYPES``); ``(type used,
    why not AF_XDP)``: ``auto`` falls back to ``system`` with the reason (and, after one
    failure to come up, does not try again in this process: each try costs seconds), the
    others raise PortTypeError."""
    global _afxdp_failed
    if wanted not in PORT_TYPES:
        raise ValueError(f"port type must be one of {', '.join(PORT_TYPES)}, not {wanted!r}")
    if wanted == "system":
        return "system", ""
    reason = afxdp_unavailable() if wanted == "auto" else _not_offered()
    if reason:
        if wanted == AFXDP:
            raise PortTypeError(reason)
        return "system", reason
    try:
        set_port_type(ports, AFXDP)
    except PortTypeError as err:
        if wanted == AFXDP:
            raise
        _afxdp_failed = str(err)
        set_port_type(ports, "system")  # back to a packet socket per port
        return "system", str(err)
    return AFXDP, ""
