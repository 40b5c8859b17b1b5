"""Experiments over many runs: compare, validate, calibrate, bench."""
