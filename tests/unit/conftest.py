"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

import nfs
from nfs import plugins
from nfs.strategies import registry


@pytest.fixture
def restore_registries():
    """Restore the NF and strategy registries after a test that loads plugins, so that two
    files declaring the same names (a lab's starter and its solution) can load in turn."""
    nf_classes = dict(nfs.NF_CLASSES)
    strategies = dict(registry._REGISTRY)
    loaded = dict(plugins._LOADED)
    yield
    nfs.NF_CLASSES.clear()
    nfs.NF_CLASSES.update(nf_classes)
    registry._REGISTRY.clear()
    registry._REGISTRY.update(strategies)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
