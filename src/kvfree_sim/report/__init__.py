"""Reports: text, tables, plots."""
