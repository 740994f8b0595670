"""Network functions, written once and run by every strategy; see ``nfs.base``.

``make_nf(name, **params)`` builds one by its short name (``NF_CLASSES`` lists them, in the
order of the paper's table: ddos, hh, tb, knock, conntrack).
"""

from __future__ import annotations

import argparse
import json

from nfs.base import NetworkFunction
from nfs.conntrack import TcpConnectionTracker
from nfs.ddos import DDoSMitigator
from nfs.heavy_hitter import HeavyHitterDetector
from nfs.port_knocking import PortKnockingFirewall
from nfs.token_bucket import TokenBucketPolicer

NF_CLASSES: dict[str, type[NetworkFunction]] = {
    cls.name: cls
    for cls in (DDoSMitigator, HeavyHitterDetector, TokenBucketPolicer, PortKnockingFirewall,
                TcpConnectionTracker)
}


def make_nf(name: str, **params) -> NetworkFunction:
    """The NF called ``name`` with ``params``; a ValueError names the known ones."""
    try:
        cls = NF_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown NF {name!r}; choose from {', '.join(NF_CLASSES)}") from None
    try:
        return cls(**params)
    except TypeError as err:  # an unknown parameter name
        raise ValueError(f"bad parameters for NF {name!r}: {err}") from None


def parse_nf_params(text: str) -> dict:
    """``--nf-params``: a JSON object of NF parameters; ValueError (one line) otherwise."""
    try:
        params = json.loads(text)
    except ValueError as err:
        raise ValueError(f"--nf-params is not valid JSON: {err}") from None
    if not isinstance(params, dict):
        raise ValueError(f"--nf-params must be a JSON object, not {text!r}")
    return params


def nf_params_arg(text: str) -> dict:
    """``parse_nf_params`` as an argparse ``type``: its message becomes the usage error."""
    try:
        return parse_nf_params(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
