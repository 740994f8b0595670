"""One import point for the controller framework: os-ken, or Ryu where that is installed.

os-ken is OpenStack's maintained fork of Ryu and runs on Python 3.11; Ryu 4.34 does not.
Both expose the same modules under different package names, and the app base class is
``OSKenApp`` in one and ``RyuApp`` in the other. Everything else in ``controller`` imports
from here, so the app runs unchanged on either.

OpenFlow 1.3 and 1.5 are both exported: the dispatch app speaks 1.5 when the switch offers it
(select groups with OVS's selection-method property need it) and 1.3 otherwise.
"""

try:
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from os_ken.lib import hub
    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_5, ofproto_v1_5_parser

    BaseApp = app_manager.OSKenApp
    FRAMEWORK = "os_ken"
except ImportError:  # pragma: no cover - only on machines with Ryu instead of os-ken
    from ryu import cfg
    from ryu.base import app_manager
    from ryu.controller import ofp_event
    from ryu.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from ryu.lib import hub
    from ryu.ofproto import ofproto_v1_3, ofproto_v1_5, ofproto_v1_5_parser

    BaseApp = app_manager.RyuApp
    FRAMEWORK = "ryu"

__all__ = [
    "BaseApp",
    "CONFIG_DISPATCHER",
    "FRAMEWORK",
    "MAIN_DISPATCHER",
    "app_manager",
    "cfg",
    "hub",
    "ofp_event",
    "ofproto_v1_3",
    "ofproto_v1_5",
    "ofproto_v1_5_parser",
    "set_ev_cls",
]
