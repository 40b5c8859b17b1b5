"""Memory management: gfp.py, page_alloc.py, vmscan.py, slab.py, oom.py (mm/)."""
