"""Simulation core: event loop, seeded randomness, machine cost profiles.

Knows nothing of the kernel.
"""
