"""The one error a trial raises: :class:`TrialError`.

It lives here, at the bottom of the layers that need it, rather than with the runtime's
configuration (``experiments.runtime.config``): reading results
(``experiments.analysis.collect``) raises it for a missing or unreadable result file, and
the analysis layer may not import the runtime above it. The runtime (processes, testbed)
raises the same class, so a caller catches one exception for "this trial produced no
usable result", whichever stage failed.
"""

from __future__ import annotations


class TrialError(RuntimeError):
    """A trial could not run or its processes did not produce their results."""
