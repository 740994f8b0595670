"""Plugins: an NF, a strategy or a sequencer from a Python file outside the package.

A plugin is one ``.py`` file that declares any of

* ``NF_CLASSES``: a dict of name -> :class:`~nfs.base.NetworkFunction` subclass;
* ``STRATEGY`` or ``STRATEGIES``: :class:`~nfs.strategies.Strategy` objects;
* ``SEQUENCER``: a subclass of :class:`sequencer.shim.Sequencer` for the shim to run.

:func:`load_plugin` imports the file by its path and registers what it declares, so that
``make_nf``, the strategy registry, the worker (``--plugin``), the shim host (``--plugin``)
and a trial (``TrialConfig.plugins``) all know them. Every process of a trial loads the same
files, so a student's fast-forward or a researcher's new strategy runs on the live data path
without an edit to this package. The teaching labs (``labs/``) grade students' code this way.

Caveats: a plugin runs with the process's rights (root in a trial): it is code, not data.
Loading the same file twice in one process returns the module loaded first (keyed by the
resolved path), so a plugin's registrations happen once; a name an NF or strategy of the
package already has is refused, not replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from nfs import NF_CLASSES
from nfs.base import NetworkFunction
from nfs.strategies.registry import add, get, names
from nfs.strategies.spec import Strategy

_LOADED: dict[Path, ModuleType] = {}


def load_plugin(path: str | Path) -> ModuleType:
    """Import the plugin file ``path`` and register its NFs and strategies (module doc).

    ValueError (one line) if the file is missing, does not import, or declares a name that
    is taken; an error inside the plugin's own code is named with its file and line."""
    path = Path(path).resolve()
    if path in _LOADED:
        return _LOADED[path]
    module = import_file(path)
    _register(module, path)
    _LOADED[path] = module
    return module


def import_file(path: str | Path) -> ModuleType:
    """Import the Python file ``path`` as a module of its own, registering nothing;
    ValueError (one line, with the file and line) if it does not import."""
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise ValueError(f"{path} is not a Python file")
    # A module name unique to the path: two labs' files may share a base name.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"scr_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise ValueError(f"{path.name}, line {err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        del sys.modules[name]
        raise ValueError(f"{path.name} failed to import: {where(err, path)}"
                         f"{type(err).__name__}: {err}") from None
    return module


def innermost_frame(err: BaseException, paths) -> tuple[Path, int] | None:
    """The file (one of ``paths``) and line of the innermost frame of ``err`` in any of
    ``paths``: where a plugin's (a student's) own code raised (None: not in them)."""
    wanted = {Path(p).resolve() for p in paths}
    found = None
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if path in wanted:
            found = (path, lineno)
    return found


def where(err: BaseException, path: Path) -> str:
    """``"line N: "`` of the innermost frame of ``err`` in ``path`` ('' if none)."""
    found = innermost_frame(err, [path])
    return f"line {found[1]}: " if found else ""


def _register(module: ModuleType, path: Path) -> None:
    """Check everything the plugin declares, then register it all (never half of it)."""
    nf_classes = getattr(module, "NF_CLASSES", {})
    if not isinstance(nf_classes, dict):
        raise ValueError(f"{path.name}: NF_CLASSES must be a dict of name -> NF class")
    for nf_name, cls in nf_classes.items():
        if not (isinstance(cls, type) and issubclass(cls, NetworkFunction)):
            raise ValueError(f"{path.name}: NF_CLASSES[{nf_name!r}] is not a NetworkFunction "
                             "subclass")
        if NF_CLASSES.get(nf_name, cls) is not cls:
            raise ValueError(f"{path.name}: NF name {nf_name!r} is taken")
    strategies = getattr(module, "STRATEGIES", ())
    if not isinstance(strategies, list | tuple):
        raise ValueError(f"{path.name}: STRATEGIES must be a list of Strategy objects")
    if hasattr(module, "STRATEGY"):
        strategies = (module.STRATEGY, *strategies)
    for strategy in strategies:
        if not isinstance(strategy, Strategy):
            raise ValueError(f"{path.name}: STRATEGY must be a nfs.strategies.Strategy, not "
                             f"{type(strategy).__name__}")
        if strategy.name in names() and get(strategy.name) is not strategy:
            raise ValueError(f"strategy {strategy.name!r} is registered twice")
    NF_CLASSES.update(nf_classes)
    for strategy in strategies:
        add(strategy)


def load_plugins(paths) -> list[ModuleType]:
    """:func:`load_plugin` for each of ``paths``, in order."""
    return [load_plugin(p) for p in paths]


def plugin_sequencer(modules: list[ModuleType]):
    """The ``SEQUENCER`` class the last of ``modules`` that declares one declares (None)."""
    found = None
    for module in modules:
        found = getattr(module, "SEQUENCER", found)
    return found


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", type=Path, action="append", default=[], metavar="FILE",
                        help="load the NFs and strategies this Python file declares "
                             "(nfs.plugins; repeatable)")


def preload_plugins(argv: list[str] | None, prog: str) -> list:
    """Load the ``--plugin`` files first (the other options' choices depend on them);
    their modules. A bad plugin ends the process with one line and exit status 2."""
    parser = argparse.ArgumentParser(add_help=False)
    add_plugin_flag(parser)
    known, _rest = parser.parse_known_args(argv)
    try:
        return load_plugins(known.plugin)
    except ValueError as err:
        parser.exit(2, f"{prog}: {err}\n")
