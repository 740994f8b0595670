"""argparse value types shared by the command-line tools: a bad value ends the command with
argparse's one-line message (``argument --x: must be > 0, got -5``) and exit status 2.

Floats must be finite: ``inf`` and ``nan`` parse as floats but would only fail later, deep
in a run (a rate of ``inf`` packets/s has no trace length), so they are refused here.
"""

from __future__ import annotations

import argparse
import math


def _finite(text: str) -> float:
    value = float(text)  # a ValueError becomes argparse's "invalid <type> value"
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
