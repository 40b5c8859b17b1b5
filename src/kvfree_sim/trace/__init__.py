"""Tracers: ftrace-format text that opens in Perfetto."""
