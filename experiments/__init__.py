"""Experiments: traffic, the one-trial runner, sweeps, results folders and plots."""
