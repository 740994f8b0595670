"""Unit tests of the package this folder mirrors (no root, no network)."""
