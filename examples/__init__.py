"""Runnable example applications built on kes."""
