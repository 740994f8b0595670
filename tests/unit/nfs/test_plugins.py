"""Plugins (``nfs.plugins``): an NF, a strategy or a sequencer from a file outside the package.

A plugin file written here declares a toy NF and a strategy; loading it registers both, so
``make_nf``, the registry, the worker's and the shim's option parsers know them. Bad plugins
(a missing file, a syntax error, an error at import, a taken name, a wrong type) end with one
line naming the file and line. The registries are restored after each test.
"""

from __future__ import annotations

import textwrap

import pytest

import nfs
from experiments.hosts import shim as shim_host
from nfs import make_nf, plugins, worker
from nfs.strategies import get, names
from sequencer.shim import Sequencer

PLUGIN = '''
"""A toy plugin."""
from nfs.ddos import DDoSMitigator
from nfs.cores.replica import Replica
from nfs.strategies import Strategy
from sequencer.shim import Sequencer


class ToyNF(DDoSMitigator):
    name = "toy-plugin-nf"


class ToySequencer(Sequencer):
    pass


NF_CLASSES = {"toy-plugin-nf": ToyNF}
STRATEGY = Strategy(name="toy-plugin", summary="a plugin's strategy", spray="scr",
                    history=True, make_core=lambda nf, core, n, _args: Replica(nf, core, n))
SEQUENCER = ToySequencer
'''

pytestmark = pytest.mark.usefixtures("restore_registries")


def write(tmp_path, text: str, name: str = "plugin.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_plugin_registers_its_nf_strategy_and_sequencer(tmp_path):
    module = plugins.load_plugin(write(tmp_path, PLUGIN))
    assert make_nf("toy-plugin-nf").name == "toy-plugin-nf"
    assert "toy-plugin" in names() and get("toy-plugin").history
    seq_cls = plugins.plugin_sequencer([module])
    assert seq_cls is module.ToySequencer and issubclass(seq_cls, Sequencer)
    assert plugins.load_plugin(tmp_path / "plugin.py") is module  # loaded once


def test_the_worker_and_the_shim_load_plugins_before_their_choices(tmp_path):
    path = write(tmp_path, PLUGIN)
    args = worker.parse_args(["--plugin", str(path), "--iface", "lo", "--core", "0",
                              "--cores", "2", "--nf", "toy-plugin-nf",
                              "--strategy", "toy-plugin", "--out", str(tmp_path)])
    assert args.nf == "toy-plugin-nf" and args.strategy == "toy-plugin"
    # The shim host's parser knows the plugin's NF and strategy too (it gets as far as the
    # interface, which does not exist here).
    with pytest.raises(SystemExit) as exit_:
        shim_host.main(["--plugin", str(path), "--in-iface", "nosuch0", "--out-iface",
                        "nosuch1", "--cores", "2", "--nf", "toy-plugin-nf", "--strategy",
                        "toy-plugin", "--out", str(tmp_path)])
    assert exit_.value.code == 2


@pytest.mark.parametrize("text, message", [
    ("def broken(:\n", "plugin.py, line 1: syntax error"),
    ("x = 1\ny = 1 / 0\n", "plugin.py failed to import: line 2: ZeroDivisionError"),
    ("from nfs.ddos import DDoSMitigator\nNF_CLASSES = {'ddos': type('X', (DDoSMitigator,), {})}\n",
     "NF name 'ddos' is taken"),
    ("NF_CLASSES = {'x': int}\n", "is not a NetworkFunction subclass"),
    ("STRATEGY = 'scr'\n", "STRATEGY must be a nfs.strategies.Strategy, not str"),
    ("NF_CLASSES = ['ddos']\n", "NF_CLASSES must be a dict of name -> NF class"),
    ("STRATEGIES = 3\n", "STRATEGIES must be a list of Strategy objects"),
])
def test_a_bad_plugin_is_one_line(tmp_path, text, message):
    with pytest.raises(ValueError) as err:
        plugins.load_plugin(write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_taken_strategy_name_is_refused_and_nothing_registered(tmp_path):
    text = PLUGIN.replace('name="toy-plugin"', 'name="scr"').replace("toy-plugin-nf", "toy2")
    with pytest.raises(ValueError, match="'scr' is registered twice"):
        plugins.load_plugin(write(tmp_path, text))
    assert get("scr").summary != "a plugin's strategy"
    assert "toy2" not in nfs.NF_CLASSES  # the plugin's NF was not registered either


def test_a_missing_plugin_ends_the_worker_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        worker.parse_args(["--plugin", str(tmp_path / "nosuch.py"), "--iface", "lo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worker: ") and "nosuch.py is not a Python file" in err
    assert "\n" not in err


def test_import_file_registers_nothing(tmp_path):
    module = plugins.import_file(write(tmp_path, PLUGIN, "other.py"))
    assert module.STRATEGY.name == "toy-plugin" and "toy-plugin" not in names()
