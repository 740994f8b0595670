"""A toy strategy, as a researcher would add one: this module and one registry line.

``toy`` is SCR whose cores also count, per core, the history records they applied
(``toy_records``) under a label given by their own worker option (``--toy-label``). Its
``skip`` option makes a broken variant: the core skips every history record whose sequence
number is a multiple of ``--skip`` (and says nothing), which the oracle must catch.

Caveat: a test fixture, registered only inside ``registry.register(STRATEGY)``.
"""

from __future__ import annotations

import argparse

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.replica import Replica
from nfs.strategies.spec import Strategy, TrialPlaces, TrialSettings


class ToyReplica(Replica):
    """An SCR replica that counts the records it applies (and may skip some)."""

    strategy = "toy"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, label: str, skip: int):
        super().__init__(nf, core, n_cores)
        self.label = label
        self.skip = skip

    def apply_record(self, seq: int, fields: tuple) -> None:
        if self.skip and seq % self.skip == 0:
            return  # the bug: the record is dropped silently
        self.stats["toy_records"] += 1
        super().apply_record(seq, fields)

    def results(self) -> dict:
        return {**super().results(), "toy_label": self.label}


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toy-label", default="toy", help="a name the core reports")
    parser.add_argument("--skip", type=int, default=0,
                        help="the bug: skip the records of every SKIP-th packet (0: none)")


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    return ToyReplica(nf, core, n_cores, args.toy_label, args.skip)


def worker_flags(settings: TrialSettings, places: TrialPlaces) -> tuple:
    return ("--toy-label", f"{settings.cores}-cores")


STRATEGY = Strategy(
    name="toy", summary="SCR that counts its fast-forwarded records", spray="scr",
    history=True, make_core=make_core, add_flags=add_flags, worker_flags=worker_flags)
