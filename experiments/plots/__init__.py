"""Paper-style figures, drawn from a results folder's CSV (``experiments.plots.plotting``).

The package selects matplotlib's Agg backend here, once, before any of its modules imports
``matplotlib.pyplot``: a testbed machine has no display, and a module of this package can
only be imported after its package.
"""

import matplotlib

matplotlib.use("Agg")  # no display on a testbed machine
